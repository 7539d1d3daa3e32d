"""The one place that writes what a user reads (Rich). Results go to stdout, progress to stderr."""

from __future__ import annotations

import os

from rich.console import Console
from rich.theme import Theme

THEME = Theme({
    "promote": "bold green", "keep": "cyan", "escalate": "bold yellow", "error": "bold red",
    "hint": "yellow", "muted": "grey50", "path": "underline",
})

_force = os.environ.get("MODELCYCLE_FORCE_COLOR")
console = Console(theme=THEME, highlight=False, force_terminal=bool(_force) or None)
err_console = Console(theme=THEME, highlight=False, stderr=True, force_terminal=bool(_force) or None)

OUTCOME_STYLE = {"promote": "promote", "keep": "keep", "escalate": "escalate"}
