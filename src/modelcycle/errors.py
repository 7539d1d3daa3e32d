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
    ├── ServingError                a model version cannot load or predict where it is served
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


class ServingError(ModelcycleError):
    exit_code = 9


DISK_ERRNOS = (28, 122, 13, 1, 30)  # ENOSPC, EDQUOT, EACCES, EPERM, EROFS


def disk_cause(exc: BaseException | None) -> OSError | None:
    """The file-system error (disk full, read-only, no permission) behind a library's own error,
    if there is one, with the file's name when it can be found: adapters raise it as it is, so
    the user reads "no space left on device" and the path rather than the library's rewording."""
    import re

    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError):
            if exc.errno in DISK_ERRNOS:
                return exc
            found = re.search(r"\[Errno (\d+)\] ([^'\"\]]+)", str(exc))
            if found and int(found[1]) in DISK_ERRNOS:
                where = None
                if exc.args and isinstance(exc.args[0], list) and exc.args[0] and len(exc.args[0][0]) == 3:
                    where = exc.args[0][0][1]  # shutil.Error: [(src, dst, why), ...]
                return OSError(int(found[1]), found[2].strip(), where or exc.filename)
        exc = exc.__cause__ or exc.__context__
    return None
