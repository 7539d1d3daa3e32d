"""Data and model versions: an interface, the DVC + git adapter and an in-memory fake."""

from modelcycle.versioning.base import Snapshot, Versioning, VersionState

__all__ = ["Snapshot", "Versioning", "VersionState"]
