"""Where lapse reads and writes by default, and the names of the files it keeps next to the data."""

from __future__ import annotations

import os
from pathlib import Path

from config.base import Settings

REPO_ROOT = Path(__file__).resolve().parent.parent


class Paths(Settings):
    """Where lapse reads and writes by default (all under the repo, all ignored by git)."""

    root: Path = REPO_ROOT
    work: Path = REPO_ROOT / ".lapse"
    # The settings file a user keeps in the data folder (or names with --config).
    config_file: str = "lapse.toml"
    # Deprecated: the [program] table of lapse.toml replaces it; still read when lapse.toml has no [program].
    legacy_program_file: str = "program.json"
    # The data folder's record of the end of observation (data_end).
    meta_file: str = "meta.json"
    mlflow_db: str = "mlflow.db"
    decisions_db: str = "decisions.db"

    @property
    def demo_data(self) -> Path:
        return self.work / "demo-data"

    @property
    def tracking_uri(self) -> str:
        return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{self.work / self.mlflow_db}"

    @property
    def artifact_root(self) -> Path:
        return self.work / "mlartifacts"

    @property
    def decision_log_url(self) -> str:
        """The decision log's default database: SQLite in the work folder."""
        return f"sqlite:///{self.work / self.decisions_db}"


DEFAULT_PATHS = Paths()
