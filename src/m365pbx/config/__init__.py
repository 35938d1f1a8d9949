"""Configuration: the YAML file plus `M365PBX_…` environment overrides, checked at load time.

`load_config()` returns `Settings` or raises `ConfigError` listing every problem with its file,
line and key path; secrets are never part of a message.
"""

from m365pbx.config.connections import (
    ApiConnection,
    ApiSettings,
    AsteriskConnection,
    AsteriskSettings,
    Matching,
    PbxConnection,
    PersonSwitches,
    SipConnection,
    SipSettings,
    Transport,
)
from m365pbx.config.durations import Duration, format_duration, parse_duration
from m365pbx.config.environment import CONFIG_ENV_VAR, SECRET_KEY_ENV_VAR
from m365pbx.config.errors import ConfigError, Problem, format_path
from m365pbx.config.loader import (
    DEFAULT_CONFIG_FILE,
    example_config_text,
    find_config_file,
    load_config,
)
from m365pbx.config.models import (
    Database,
    Listen,
    LogFormat,
    LoggingConfig,
    PresenceConfig,
    SecretsConfig,
    Settings,
)
from m365pbx.config.secrets import MASK, Secret
from m365pbx.config.summary import Counts, count, describe
from m365pbx.config.tenants import Credential, Directory, ServiceAccount, Tenant
from m365pbx.core.credentials import Permission, SignInMethod

__all__ = [
    "CONFIG_ENV_VAR",
    "DEFAULT_CONFIG_FILE",
    "MASK",
    "SECRET_KEY_ENV_VAR",
    "ApiConnection",
    "ApiSettings",
    "AsteriskConnection",
    "AsteriskSettings",
    "ConfigError",
    "Counts",
    "Credential",
    "Database",
    "Directory",
    "Duration",
    "Listen",
    "LogFormat",
    "LoggingConfig",
    "Matching",
    "PbxConnection",
    "Permission",
    "PersonSwitches",
    "PresenceConfig",
    "Problem",
    "Secret",
    "SecretsConfig",
    "ServiceAccount",
    "Settings",
    "SignInMethod",
    "SipConnection",
    "SipSettings",
    "Tenant",
    "Transport",
    "count",
    "describe",
    "example_config_text",
    "find_config_file",
    "format_duration",
    "format_path",
    "load_config",
    "parse_duration",
]
