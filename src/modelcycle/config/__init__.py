"""modelcycle.yaml and params.yaml: models, loading, windows, secrets. Imports nothing above it."""

from modelcycle.config.load import CONFIG_FILE, PARAMS_FILE, STATE_DIR, Workspace, load_config, load_params
from modelcycle.config.models import Params, ProjectConfig
from modelcycle.config.secrets import ENV_FILE, find_literal_secrets, literal_secrets, literal_secrets_error, redact
from modelcycle.config.window import Window, month_range

__all__ = ["CONFIG_FILE", "ENV_FILE", "PARAMS_FILE", "STATE_DIR", "Params", "ProjectConfig", "Window",
           "Workspace", "find_literal_secrets", "literal_secrets", "literal_secrets_error", "load_config",
           "load_params", "month_range", "redact"]
