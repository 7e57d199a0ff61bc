"""The model's metadata (`model_meta.json`): one typed, versioned object, written by training, read by every user.

Training writes it next to the booster; the service, the pyfunc, the clinician page's model card
and batch scoring read it with `read_metadata`. A file without `schema_version`, with a version
this lapse does not know, or with fields that break the schema is refused with a message that
names the model and says what to do: retrain it with this lapse.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from config import EventsConfig, FeatureConfig, LabelConfig, ProgramConfig
from models.calibration import PlattCalibration

# Raise it when a field changes meaning or a required field is added; old files are then refused.
SCHEMA_VERSION = 1
META_FILE = "model_meta.json"
BOOSTER_FILE = "model.ubj"
_RETRAIN = "retrain it with this lapse (`lapse train`, then `lapse promote`)"


class MetadataError(ValueError):
    """A model's metadata cannot be read by this lapse; the message names the model and what to do."""


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Tier(_Part):
    """A risk tier and the lowest risk that falls in it."""

    name: str = Field(min_length=1)
    min_risk: float = Field(ge=0.0, le=1.0)


class CatalogEntry(_Part):
    """A model feature as the catalog described it at training time."""

    name: str
    label: str
    unit: str
    level: str
    group: str = ""
    description: str = ""


class WindowPart(_Part):
    """Which patients one part of the temporal split holds (by enrolment time)."""

    enrolled_from: str
    enrolled_to: str
    patients: int
    rows: int


class TrainingWindow(_Part):
    """The enrolment windows of the train, validation and test parts, and the end of the data."""

    train: WindowPart
    validation: WindowPart
    test: WindowPart
    data_end: str


class ModelMetadata(_Part):
    """Everything about a trained model that scoring, serving and the model card need besides the booster."""

    schema_version: Literal[1] = SCHEMA_VERSION
    model: Literal["xgboost"] = "xgboost"
    booster_file: str = BOOSTER_FILE
    feature_names: tuple[str, ...] = Field(min_length=1)
    catalog: tuple[CatalogEntry, ...]
    calibration: PlattCalibration
    # Risk at or above which human support is triggered (the validation risk at the operating capacity).
    operating_threshold: float = Field(ge=0.0, le=1.0)
    operating_capacity: float
    # Highest tier first; the last one starts at 0.
    tiers: tuple[Tier, ...] = Field(min_length=1)
    trigger_tier: str
    label: LabelConfig
    as_of_days: tuple[int, ...]
    program: ProgramConfig
    # The program's [events] declaration: its own event types are features too.
    events: EventsConfig = EventsConfig()
    training_window: TrainingWindow
    headline_slice: str
    headline_metrics: dict[str, float | None]
    best_iteration: int
    seed: int
    versions: dict[str, str]

    @property
    def tier_cuts(self) -> tuple[tuple[str, float], ...]:
        """The tiers as (name, lowest risk), highest first."""
        return tuple((t.name, t.min_risk) for t in self.tiers)

    def feature_config(self) -> FeatureConfig:
        """The feature settings the model was trained with (the program's pace and the as-of days)."""
        # A model trained on calendar snapshots only has no as-of days.
        return FeatureConfig(as_of_days=self.as_of_days, calendar=not self.as_of_days, program=self.program,
                             events=self.events)


def write_metadata(path: str | Path, metadata: ModelMetadata) -> Path:
    """Write `metadata` as JSON to `path`."""
    path = Path(path)
    path.write_text(metadata.model_dump_json(indent=2) + "\n")
    return path


def parse_metadata(raw: object, source: str) -> ModelMetadata:
    """The metadata in `raw` (parsed JSON) of the model at `source`, or MetadataError saying why not."""
    if not isinstance(raw, dict) or "schema_version" not in raw:
        raise MetadataError(f"{source}: the model's {META_FILE} has no schema_version (it was logged by an older "
                            f"lapse), so this lapse cannot use it; {_RETRAIN}")
    if raw["schema_version"] != SCHEMA_VERSION:
        raise MetadataError(f"{source}: the model's {META_FILE} has schema version {raw['schema_version']!r}, "
                            f"this lapse reads version {SCHEMA_VERSION}; {_RETRAIN}")
    try:
        return ModelMetadata.model_validate(raw)
    except ValidationError as error:
        # Locations and error types only: the metadata holds no patient data, but the rule keeps messages short.
        broken = sorted({".".join(str(p) for p in e["loc"]) + f" ({e['type']})" for e in error.errors()})
        raise MetadataError(f"{source}: the model's {META_FILE} breaks schema version {SCHEMA_VERSION} at "
                            f"{', '.join(broken[:10])}; {_RETRAIN}") from None


def read_metadata(path: str | Path, source: str | None = None) -> ModelMetadata:
    """Read and check a `model_meta.json` (`source` names the model in errors; the path if not given)."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise MetadataError(f"{source or path}: the model's {META_FILE} is not JSON (line {error.lineno}); "
                            f"{_RETRAIN}") from None
    return parse_metadata(raw, source or str(path))
