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


@dataclass(frozen=True)
class DemoConfig:
    """The embedded default cohort that `make demo` simulates."""

    n_patients: int = 20_000
    days: int = 120
    seed: int = 20261201


DEFAULT_PATHS = Paths()
