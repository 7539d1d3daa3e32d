"""The one place that writes what a user reads (Rich). Results go to stdout, progress to stderr."""

from __future__ import annotations

import os
import sys

from rich.console import Console
from rich.theme import Theme

THEME = Theme({
    "promote": "bold green", "keep": "cyan", "rolled_back": "magenta", "escalate": "bold yellow", "error": "bold red",
    "hint": "yellow", "muted": "grey50", "path": "underline",
})

_force = os.environ.get("MODELCYCLE_FORCE_COLOR")


def _width(stream: object) -> int | None:
    """The terminal's width; when output goes to a file or a pipe (a log, CI), wide enough for
    the decision tables (Rich would otherwise squeeze them into 80 columns). COLUMNS wins."""
    if "COLUMNS" in os.environ:
        return None
    isatty = getattr(stream, "isatty", None)
    return None if isatty is not None and isatty() else 140


console = Console(theme=THEME, highlight=False, force_terminal=bool(_force) or None, width=_width(sys.stdout))
err_console = Console(theme=THEME, highlight=False, stderr=True, force_terminal=bool(_force) or None,
                      width=_width(sys.stderr))

OUTCOME_STYLE = {"promote": "promote", "keep": "keep", "rolled_back": "rolled_back", "escalate": "escalate",
                 "failed": "error"}
