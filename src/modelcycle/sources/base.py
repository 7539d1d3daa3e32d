"""The source interface: rows of a table filtered by a time window."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

import pandas as pd


class Source(Protocol):
    """A table with a timestamp column, read one time range at a time."""

    def fetch(self, start: datetime, end: datetime) -> pd.DataFrame:
        """Rows with ``start <= timestamp < end``, sorted by the timestamp."""
        ...

    def describe(self) -> str:
        """Where the rows come from, in words (for messages)."""
        ...

    def check(self) -> None:
        """Raise SourceError if the source does not open or lacks the table/column."""
        ...
