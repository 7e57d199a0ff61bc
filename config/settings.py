"""Every domain's settings in one object: the tables of lapse.toml, read from the environment as LAPSE_<TABLE>__<KEY>."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from config.events import EventsConfig
from config.features import FeatureConfig
from config.labels import LabelConfig
from config.outreach import OutreachConfig
from config.program import ProgramConfig
from config.registry import RegistryConfig
from config.report import ReportConfig
from config.scale_out import ScaleOutConfig
from config.serving import ClinicianPageConfig, HardeningConfig, ServingConfig
from config.training import PromotionGates, TrainingConfig

ENV_PREFIX = "LAPSE_"
ENV_NESTED_DELIMITER = "__"

# Tables whose settings another domain carries: (domain, its field, the table that sets it).
SHARED_TABLES = (("features", "program", "program"), ("features", "events", "events"), ("training", "registry", "registry"),
                 ("serving", "registry", "registry"))


class LapseSettings(BaseSettings):
    """All settings, one attribute per table of lapse.toml.

    A new table (e.g. a program's event vocabulary under [events]) is a new field here and a new module
    in config/; nothing else in the file changes. Use `config.load_settings` to read lapse.toml, the
    environment and command-line values with their precedence; built directly, this reads the environment.
    """

    model_config = SettingsConfigDict(frozen=True, extra="forbid", env_prefix=ENV_PREFIX,
                                      env_nested_delimiter=ENV_NESTED_DELIMITER)

    labels: LabelConfig = Field(default_factory=LabelConfig)
    features: FeatureConfig = Field(default_factory=FeatureConfig)
    program: ProgramConfig = Field(default_factory=ProgramConfig)
    events: EventsConfig = Field(default_factory=EventsConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    promotion: PromotionGates = Field(default_factory=PromotionGates)
    registry: RegistryConfig = Field(default_factory=RegistryConfig)
    serving: ServingConfig = Field(default_factory=ServingConfig)
    clinician_page: ClinicianPageConfig = Field(default_factory=ClinicianPageConfig)
    hardening: HardeningConfig = Field(default_factory=HardeningConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    scale_out: ScaleOutConfig = Field(default_factory=ScaleOutConfig)
    outreach: OutreachConfig = Field(default_factory=OutreachConfig)

    @model_validator(mode="before")
    @classmethod
    def _share_tables(cls, data: Any) -> Any:
        """[program] and [registry] are set once, in their own table, and handed to the domains that use them."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for domain, name, table in SHARED_TABLES:
            given = data.get(domain, {})
            if isinstance(given, BaseModel):  # a built domain: its own copy is replaced by the table's
                values = {key: value for key, value in given if key != name}
            elif isinstance(given, dict):
                values = dict(given)
                if name in values:
                    raise ValueError(f"[{domain}] {name}: set these in the [{table}] table")
            else:
                continue
            values[name] = data.get(table, {})
            data[domain] = values
        return data
