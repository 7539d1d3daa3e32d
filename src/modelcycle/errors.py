"""The one exception tree of modelcycle.

Every error a user can cause or meet is a :class:`ModelcycleError`. Third-party errors (MLflow,
DVC, git, DuckDB, SQLAlchemy, pydantic) are translated once, at the adapter that calls the
tool, ending in ``raise Mapped(...) from exc``; nothing above the adapters sees them.

    ModelcycleError                 message (what happened) + hint (what to do next)
    ├── ConfigError                 modelcycle.yaml / params.yaml missing, unreadable, misspelt
    ├── WorkspaceError              not a workspace, already initialised, half-done cycle
    ├── SourceError                 a data source does not open or a query fails
    ├── DataError                   the data itself is unusable
    │   ├── EmptyWindowError        no rows in the requested window
    │   └── SchemaError             a column is missing or of the wrong type (names column + rule)
    ├── ModelError                  an estimator cannot be built, trained or loaded
    ├── RegistryError               the tracking server / model registry refused or failed
    │   └── NoChampionError         the model has no champion yet
    ├── VersioningError             git or DVC refused or failed
    └── NotifyError                 a notification could not be delivered

The CLI maps these to exit codes and prints ``message`` and ``hint`` without a traceback
(``--verbose`` shows it).
"""

from __future__ import annotations


class ModelcycleError(Exception):
    """Base class. ``message`` says what happened, ``hint`` what the user can do about it."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n{self.hint}"


class ConfigError(ModelcycleError):
    exit_code = 2


class WorkspaceError(ModelcycleError):
    exit_code = 2


class SourceError(ModelcycleError):
    exit_code = 3


class DataError(ModelcycleError):
    exit_code = 4


class EmptyWindowError(DataError):
    pass


class SchemaError(DataError):
    def __init__(self, message: str, hint: str | None = None, *, column: str | None = None,
                 rule: str | None = None) -> None:
        super().__init__(message, hint)
        self.column = column
        self.rule = rule


class ModelError(ModelcycleError):
    exit_code = 5


class RegistryError(ModelcycleError):
    exit_code = 6


class NoChampionError(RegistryError):
    pass


class VersioningError(ModelcycleError):
    exit_code = 7


class NotifyError(ModelcycleError):
    exit_code = 8
