"""How `lapse train` fits the models and what `lapse promote` asks of them: [training] and [promotion]."""

from __future__ import annotations

from pydantic import Field

from config.base import Settings
from config.registry import RegistryConfig


class XGBoostParams(Settings):
    """Hyper-parameters of the gradient-boosted trees model (hist, early stopping on validation)."""

    max_rounds: int = Field(800, ge=1)
    # 0.15 reaches the AUC of 0.05 in a quarter of the trees (75 against 323 on the default
    # cohort), which keeps TreeSHAP reasons for a 1,000-patient batch within the serving budget.
    learning_rate: float = Field(0.15, gt=0)
    max_depth: int = Field(4, ge=1)
    min_child_weight: float = 5.0
    subsample: float = Field(0.8, gt=0, le=1)
    colsample_bytree: float = Field(0.8, gt=0, le=1)
    reg_lambda: float = 1.0
    early_stopping_rounds: int = Field(40, ge=1)
    # Threads for training (results do not depend on it); scoring always uses one thread per call.
    # One by default: on a shared 2-core machine a second OpenMP thread mostly spins and waits.
    nthread: int = Field(1, ge=1)


class SurvivalConfig(Settings):
    """The time-to-dropout model trained beside the risk at the horizon: [training.survival]."""

    # Days after the as-of day at which the chance of having stopped is evaluated (and calibrated).
    horizons: tuple[int, ...] = (7, 14, 28)
    # The Kaplan-Meier baseline is fitted per as-of day and per group of this patient attribute.
    baseline_group: str = "human_support"
    # Spread of the log-normal accelerated failure time model the trees are fitted under (XGBoost
    # survival:aft); each horizon's P(stopped) is then Platt-scaled on the validation rows.
    aft_sigma: float = Field(1.0, gt=0)
    # Days without own engagement (and no discontinuation) after which a patient counts as stopped
    # at the last engagement; fewer quiet days before the data end: still in the program (censored).
    quiet_days: int = Field(14, ge=1)


class TrainingConfig(Settings):
    """How `lapse train` splits, fits, calibrates, evaluates and registers the dropout models.

    `registry` is the [registry] table (set there in lapse.toml); `registered_model`, `candidate_alias` and
    `champion_alias` read it.
    """

    seed: int = 20261201
    # Share of patients, the most recently enrolled, held out as the temporal test set.
    test_fraction: float = Field(0.2, gt=0, lt=1)
    # Share of the patients enrolled before the test cohorts used for early stopping and calibration.
    validation_fraction: float = Field(0.2, gt=0, lt=1)
    # Training stops (exit 2, nothing registered) when train, validation or test holds fewer than this many
    # dropouts or fewer than this many non-dropouts: metrics and calibration on fewer are noise.
    min_class_rows: int = Field(20, ge=1)
    # The as-of day whose test metrics are the headline (and the promotion gates); pooled if absent.
    headline_day: int = 7
    # Outreach capacities: precision and recall among the top share of risks.
    capacities: tuple[float, ...] = (0.05, 0.10)
    # The operating threshold is the validation risk above which this share of the headline
    # day's validation rows falls (all rows if that day is absent).
    operating_capacity: float = Field(0.10, gt=0, le=1)
    # Risk tiers, highest first: (name, share of those validation rows at or above its cut-point).
    tiers: tuple[tuple[str, float], ...] = (("high", 0.10), ("medium", 0.25))
    lowest_tier: str = "low"
    ece_bins: int = Field(10, ge=1)
    # Lower edges of the age bands used for subgroup metrics: (25, 35) gives "<25", "25-34", "35+".
    age_bands: tuple[int, ...] = (25, 35, 45, 55, 65)
    subgroups: tuple[str, ...] = ("sex", "age_band", "education", "race_ethnicity", "human_support")
    # A subgroup enters the TPR gap only with at least this many rows and positives.
    subgroup_min_size: int = 100
    subgroup_min_positives: int = 50
    logistic_c: float = Field(1.0, gt=0)
    logistic_max_iter: int = Field(2000, ge=1)
    xgboost: XGBoostParams = Field(default_factory=XGBoostParams)
    # Rows of the test set drawn for the SHAP beeswarm plot.
    shap_plot_rows: int = 2000
    # Bins of the per-feature histograms kept as the drift reference.
    distribution_bins: int = Field(10, ge=1)
    survival: SurvivalConfig = Field(default_factory=SurvivalConfig)
    experiment: str = "lapse-dropout"
    registry: RegistryConfig = Field(default_factory=RegistryConfig)

    @property
    def registered_model(self) -> str:
        return self.registry.registered_model

    @property
    def candidate_alias(self) -> str:
        return self.registry.candidate_alias

    @property
    def champion_alias(self) -> str:
        return self.registry.champion_alias


class PromotionGates(Settings):
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
