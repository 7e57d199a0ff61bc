"""Every tunable of lapse in one typed place: paths, simulation, labels, features, training, serving."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Paths:
    """Where lapse reads and writes by default (all under the repo, all ignored by git)."""

    root: Path = REPO_ROOT
    work: Path = REPO_ROOT / ".lapse"

    @property
    def demo_data(self) -> Path:
        return self.work / "demo-data"

    @property
    def tracking_uri(self) -> str:
        return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{self.work / 'mlflow.db'}"

    @property
    def artifact_root(self) -> Path:
        return self.work / "mlartifacts"


@dataclass(frozen=True)
class LabelConfig:
    """How dropout is defined: an inactivity window and/or an explicit discontinuation event."""

    horizon_days: int = 14
    # "inactivity": no own engagement in the horizon; "discontinuation": an explicit
    # discontinued event in the horizon; "either": whichever comes first.
    definition: str = "either"
    # A patient counts as still engaged at the as-of time if they had own engagement
    # within this many days before it (and have not discontinued).
    engaged_within_days: int = 14


@dataclass(frozen=True)
class ProgramConfig:
    """The program's recommended use: the dose patients are told to aim for."""

    sessions_per_week: float = 3.0
    modules_per_week: float = 1.0
    # Completion means reaching the recommended dose: this many modules.
    core_modules: int = 8

    @classmethod
    def from_file(cls, path: Path) -> "ProgramConfig":
        """Read a program.json (any subset of the fields) over the defaults."""
        import json

        raw = json.loads(Path(path).read_text())
        unknown = set(raw) - {f for f in cls.__dataclass_fields__}
        if unknown:
            raise ValueError(f"{path}: unknown program setting(s): {', '.join(sorted(unknown))}")
        return cls(**raw)


@dataclass(frozen=True)
class FeatureConfig:
    """Windows and snapshot days used by the feature code, and the program's pace."""

    windows_days: tuple[int, ...] = (3, 7, 14)
    as_of_days: tuple[int, ...] = (3, 7, 14, 21, 28)
    recent_share_days: int = 3
    program: ProgramConfig = field(default_factory=ProgramConfig)
    # The mood trend needs check-ins at least this many days apart (bunched ones give wild slopes).
    mood_trend_min_span_days: float = 2.0
    # Optional calendar snapshots for training: every this many days from the first enrolment.
    calendar_every_days: int = 7


@dataclass(frozen=True)
class ReportConfig:
    """What the engagement report shows and how it protects small groups."""

    # Any group, share numerator or its complement with 1..min_cell-1 patients is suppressed.
    min_cell: int = 10
    # Duration of use is reported for weeks 1..weeks; level of use and completion count
    # the first weeks*7 days, among patients observed that long.
    weeks: int = 12
    # Uptake within this many days of enrolment, among patients observed that long.
    uptake_days: int = 14
    # Lower edges of the age bands: (18, 25) gives "<18", "18-24", "25+".
    age_bands: tuple[int, ...] = (18, 25, 35, 45, 55, 65)
    subgroups: tuple[str, ...] = ("sex", "age_band", "education", "human_support", "program", "referral_source")
    # Weeks whose active share the subgroup table shows.
    subgroup_weeks: tuple[int, ...] = (1, 4, 12)
    # Days at which the Kaplan-Meier survival is tabulated.
    survival_days: tuple[int, ...] = (7, 14, 28, 56, 84)
    # The day whose Kaplan-Meier survival the subgroup table shows.
    subgroup_survival_day: int = 28
    confidence: float = 0.95
    histogram_bins: int = 20


DEFAULT_PATHS = Paths()


@dataclass(frozen=True)
class ServingConfig:
    """How `lapse serve` runs the risk service: where it listens, what it accepts, what it loads."""

    host: str = "127.0.0.1"
    port: int = 3000
    workers: int = 1
    # Patients per /score or /triage request (more is refused with 422).
    max_batch_size: int = 1000
    # Raw events per patient in one request.
    max_events_per_patient: int = 5000
    # Request bodies above this size are refused with 413.
    max_body_bytes: int = 8 * 1024 * 1024
    model_name: str = "lapse-dropout"
    alias: str = "champion"
    # SQLAlchemy URL of the decision log; empty means SQLite under Paths.work.
    decision_log_url: str = ""
    # SQLite only: "full" flushes every commit to disk (survives power loss); "normal" survives a
    # crash of the service but not of the machine, and answers faster on slow disks.
    decision_log_sync: str = "full"
    # "model": tier cut-points from the model's metadata; else a JSON file {"tiers": [...], "trigger_risk": ...}.
    tiers_source: str = "model"
    # Seconds between checks that the alias still points at the served version; 0 turns polling off.
    poll_seconds: float = 0.0
    # Reasons returned per patient by /score and /triage.
    top_reasons: int = 5
    # Predictions made on start-up before the service reports ready.
    warmup_predictions: int = 20
    # Seconds a request may take before BentoML answers 504.
    request_timeout_s: float = 30.0
    # Data folder (patients + events tables) the clinician page reads timelines from; empty: none.
    data_dir: str = ""


@dataclass(frozen=True)
class ClinicianPageConfig:
    """The clinician page at /ui of the risk service: sessions, list size and the timeline."""

    # A signed-in session lasts this long, then the key must be entered again.
    session_hours: float = 8.0
    # Most patients the list sends to the browser (highest risk first).
    list_limit: int = 5000
    # Days of engagement shown before the latest score.
    timeline_days: int = 28
    # Largest login form or page request body accepted.
    max_body_bytes: int = 4096
    # Seconds between checks that the data folder's tables changed (they are re-read if so).
    data_check_seconds: float = 30.0


@dataclass(frozen=True)
class XGBoostParams:
    """Hyper-parameters of the gradient-boosted trees model (hist, early stopping on validation)."""

    max_rounds: int = 800
    # 0.15 reaches the AUC of 0.05 in a quarter of the trees (75 against 323 on the default
    # cohort), which keeps TreeSHAP reasons for a 1,000-patient batch within the serving budget.
    learning_rate: float = 0.15
    max_depth: int = 4
    min_child_weight: float = 5.0
    subsample: float = 0.8
    colsample_bytree: float = 0.8
    reg_lambda: float = 1.0
    early_stopping_rounds: int = 40
    # Threads for training (results do not depend on it); scoring always uses one thread per call.
    # One by default: on a shared 2-core machine a second OpenMP thread mostly spins and waits.
    nthread: int = 1


@dataclass(frozen=True)
class TrainingConfig:
    """How `lapse train` splits, fits, calibrates, evaluates and registers the dropout models."""

    seed: int = 20261201
    # Share of patients, the most recently enrolled, held out as the temporal test set.
    test_fraction: float = 0.2
    # Share of the patients enrolled before the test cohorts used for early stopping and calibration.
    validation_fraction: float = 0.2
    # The as-of day whose test metrics are the headline (and the promotion gates); pooled if absent.
    headline_day: int = 7
    # Outreach capacities: precision and recall among the top share of risks.
    capacities: tuple[float, ...] = (0.05, 0.10)
    # The operating threshold is the validation risk above which this share of the headline
    # day's validation rows falls (all rows if that day is absent).
    operating_capacity: float = 0.10
    # Risk tiers, highest first: (name, share of those validation rows at or above its cut-point).
    tiers: tuple[tuple[str, float], ...] = (("high", 0.10), ("medium", 0.25))
    lowest_tier: str = "low"
    ece_bins: int = 10
    # Lower edges of the age bands used for subgroup metrics: (25, 35) gives "<25", "25-34", "35+".
    age_bands: tuple[int, ...] = (25, 35, 45, 55, 65)
    subgroups: tuple[str, ...] = ("sex", "age_band", "education", "race_ethnicity", "human_support")
    # A subgroup enters the TPR gap only with at least this many rows and positives.
    subgroup_min_size: int = 100
    subgroup_min_positives: int = 50
    logistic_c: float = 1.0
    logistic_max_iter: int = 2000
    xgboost: XGBoostParams = field(default_factory=XGBoostParams)
    # Rows of the test set drawn for the SHAP beeswarm plot.
    shap_plot_rows: int = 2000
    # Bins of the per-feature histograms kept as the drift reference.
    distribution_bins: int = 10
    experiment: str = "lapse-dropout"
    registered_model: str = "lapse-dropout"
    candidate_alias: str = "candidate"
    champion_alias: str = "champion"


@dataclass(frozen=True)
class PromotionGates:
    """What a candidate must reach on the holdout before `lapse promote` makes it champion."""

    # The candidate's AUC may be at most this much below the champion's.
    max_auc_drop: float = 0.005
    max_ece: float = 0.05
    # Absolute floor, applied with or without a champion.
    min_auc: float = 0.60
    # The fairness gate (docs/training.md) covers these patient attributes, every group of each.
    fairness_attributes: tuple[str, ...] = ("sex", "age_band", "education", "race_ethnicity")
    # A group fails when its whole interval says it is served worse than this:
    # its AUC below everyone else's by more than group_auc_gap,
    group_auc_gap: float = 0.05
    # its calibration error (debiased RMS over risk bands) above group_calibration_error,
    group_calibration_error: float = 0.05
    # or, against the champion on the same rows, its AUC lower or its calibration error higher by more than this.
    group_regression: float = 0.02
    # Groups with fewer dropouts or fewer non-dropouts than these are "insufficient evidence", never failed.
    group_min_positives: int = 30
    group_min_negatives: int = 30
    # Calibration is measured over up to this many risk bands (quantiles of the group's risks),
    # each holding at least calibration_band_rows rows: fewer bands in a small group.
    calibration_bands: int = 10
    calibration_band_rows: int = 30
    # Patient-level bootstrap: resamples and the interval's confidence.
    bootstrap_resamples: int = 400
    confidence: float = 0.95


@dataclass(frozen=True)
class ScaleOutConfig:
    """How the Dask engine partitions work and sizes a local cluster."""

    # Local cluster size when no --scheduler address is given (one thread per worker process).
    workers: int = 2
    # Target events per partition; patients are hashed into ceil(events / this) buckets.
    events_per_partition: int = 2_000_000
    # Memory limit per local worker process (Dask syntax).
    memory_limit: str = "2GiB"
    # "tasks" recomputes lost shuffle pieces when a worker dies; "p2p" restarts the whole shuffle.
    shuffle_method: str = "tasks"
    # Reasons kept per patient in batch scores (the service's default too).
    top_reasons: int = 5
