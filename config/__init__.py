"""Every tunable of lapse, typed, one module per domain; `load_settings` reads lapse.toml and the environment.

See docs/configuration.md for the file, the environment variables and their precedence.
"""

from config.errors import ConfigError, LapseError
from config.events import EventColumns, EventsConfig, EventTypeDeclaration
from config.features import FeatureConfig
from config.labels import LabelConfig
from config.loader import load_settings, settings_file
from config.outreach import OutreachConfig
from config.paths import DEFAULT_PATHS, REPO_ROOT, Paths
from config.program import ProgramConfig
from config.registry import RegistryConfig
from config.report import ReportConfig
from config.scale_out import ScaleOutConfig
from config.serving import ClinicianPageConfig, HardeningConfig, ServingConfig
from config.settings import LapseSettings
from config.training import PromotionGates, TrainingConfig, XGBoostParams

__all__ = [
    "DEFAULT_PATHS", "REPO_ROOT", "ClinicianPageConfig", "ConfigError", "EventColumns", "EventTypeDeclaration",
    "EventsConfig", "FeatureConfig", "HardeningConfig", "LabelConfig", "LapseError", "LapseSettings", "OutreachConfig",
    "Paths", "ProgramConfig", "PromotionGates", "RegistryConfig", "ReportConfig",
    "ScaleOutConfig", "ServingConfig", "TrainingConfig", "XGBoostParams", "load_settings", "settings_file",
]
