"""The ``reference`` seam: ground truth that comes with a workspace's data.

Some data knows more about itself than any model can learn from its rows. A simulator knows the
best score possible on any rows (the *noise floor*: the error of the best prediction from the
columns a row shows) and what it changed in each month; a labelled benchmark may know the same.
modelcycle.yaml names such an object under ``reference:``::

    reference:
      factory: modelcycle.examples.taxifare.scenario:TaxiReference   # or reference:MyReference
      params: {seed: 7}                                              # keyword arguments of factory

``factory`` is an import path (``package.module:name``; a module beside modelcycle.yaml is
found too) of a class or function that, called with ``params``, returns an object with the
members of :class:`Reference`. When one is configured:

* each cycle asks it for the noise floor of its held-out rows, logs it with the scores
  (``noise_floor``, ``challenger_<metric>_over_floor``) and the table shows the ratio;
* a backtest asks it, per window, what happened and which decision a correct gate makes, prints
  both beside each decision with a count of the decisions that match, and marks the windows
  where something happened on the timeline.

Without ``reference:`` none of this happens; nothing else depends on it. The taxifare example's
``TaxiReference`` is one implementation; the core never imports it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from modelcycle.config import ProjectConfig, Workspace
from modelcycle.errors import ConfigError, ModelcycleError

if TYPE_CHECKING:
    import pandas as pd

#: The decisions a :class:`Truth` may expect.
DECISIONS = ("promote", "keep", "escalate", "rolled_back")
#: What an object returned by ``reference.factory`` must have.
MEMBERS = ("label", "noise_floor", "truth")


@dataclass(frozen=True)
class Truth:
    """What a reference knows about one window."""

    window: str
    expected: str         # the decision a correct gate makes: promote, keep, escalate (or rolled_back)
    what: str             # what happened in the window, in a few words ("no change", "fare rules change")
    event: bool = False   # something happened to the data: the window is marked on the timeline

    def matches(self, outcome: str) -> bool:
        """A challenger rolled back (``act.keep_rejected: false``) was a decision to keep the
        champion: it matches ``keep``, and ``rolled_back`` when a reference expects exactly that."""
        return outcome == self.expected or (outcome == "rolled_back" and self.expected == "keep")


@runtime_checkable
class Reference(Protocol):
    """The interface of the object ``reference.factory`` returns."""

    #: Whose truth it is, as the backtest's last line says it: "7 of 7 decisions match <label>",
    #: e.g. "the simulator's ground truth".
    label: str

    def noise_floor(self, rows: pd.DataFrame, metric: str) -> float | None:
        """The best score achievable on ``rows`` (a cycle's held-out rows, raw columns and
        target) in ``metric`` (mae, rmse, ...: ``metric`` in modelcycle.yaml), or None when it is
        not known for this metric."""
        ...

    def truth(self, window: str, *, has_champion: bool, config: ProjectConfig) -> Truth | None:
        """What happened in ``window`` (``YYYY-MM``) and the decision a correct gate makes there,
        given whether a champion served when the window's cycle began and the workspace's
        configuration (e.g. ``config.gate.on_bad_data``); None for a window it knows nothing about."""
        ...


def _factory_text(ws: Workspace) -> str:
    ref = ws.config.reference
    return ref.factory if ref is not None else "(none)"


def _workspace_module(ws: Workspace, path: str) -> None:
    """Import the factory's module from the workspace's folder when it lives beside
    modelcycle.yaml (``reference:Truths`` for a ``reference.py``), without putting the workspace
    on ``sys.path``."""
    from modelcycle.steps.imports import load_from

    module = path.partition(":")[0] if ":" in path else path.rpartition(".")[0]
    top = module.split(".")[0]
    if top:
        load_from(ws.root, top)


def load(ws: Workspace) -> Reference | None:
    """The workspace's reference, or None when modelcycle.yaml has no ``reference:``.

    Raises ConfigError naming ``reference.factory`` or ``reference.params`` when the factory
    cannot be imported, refuses its params, or returns an object without :data:`MEMBERS`.
    """
    from modelcycle.steps.imports import resolve

    cfg = ws.config.reference
    if cfg is None:
        return None
    try:
        _workspace_module(ws, cfg.factory)
    except ModelcycleError:
        raise
    except Exception as exc:
        raise ConfigError(f"the module of the reference '{cfg.factory}' (reference.factory) failed to import: "
                          f"{type(exc).__name__}: {exc}",
                          "fix that module, or remove `reference:` from modelcycle.yaml") from exc
    factory = resolve(cfg.factory, what="reference", field="reference.factory")
    if not callable(factory):
        raise ConfigError(f"the reference '{cfg.factory}' (reference.factory) is a {type(factory).__name__}, "
                          "not a class or function",
                          "name a class or function that returns the reference, e.g. "
                          "'modelcycle.examples.taxifare.scenario:TaxiReference'")
    try:
        obj = factory(**cfg.params)
    except ModelcycleError:
        raise
    except TypeError as exc:
        given = ", ".join(cfg.params) or "none"
        raise ConfigError(f"the reference '{cfg.factory}' refused reference.params (given: {given}): {exc}",
                          "give reference.params the keyword arguments the factory accepts") from exc
    except Exception as exc:
        raise ConfigError(f"the reference '{cfg.factory}' failed to start: {type(exc).__name__}: {exc}",
                          "fix the factory or its reference.params, or remove `reference:` from modelcycle.yaml"
                          ) from exc
    missing = [m for m in MEMBERS if not hasattr(obj, m)]
    missing += [m for m in ("noise_floor", "truth") if m not in missing and not callable(getattr(obj, m))]
    if missing or not isinstance(getattr(obj, "label", None), str):
        what = f"lacks {', '.join(missing)}" if missing else "has a `label` that is not a string"
        raise ConfigError(f"the reference '{cfg.factory}' (reference.factory) returned an object that {what}",
                          "a reference has `label` (a string), `noise_floor(rows, metric)` and "
                          "`truth(window, has_champion=..., config=...)`: see modelcycle.lifecycle.reference")
    ref: Reference = obj
    return ref


def _failed(ws: Workspace, what: str, exc: Exception) -> ConfigError:
    return ConfigError(f"the reference '{_factory_text(ws)}' failed {what}: {type(exc).__name__}: {exc}",
                       "fix it, or remove `reference:` from modelcycle.yaml")


def noise_floor(ws: Workspace, ref: Reference, rows: pd.DataFrame) -> float | None:
    """``ref.noise_floor`` on ``rows`` in the workspace's metric, checked to be a finite number."""
    import math

    try:
        floor = ref.noise_floor(rows, ws.config.metric)
    except ModelcycleError:
        raise
    except Exception as exc:
        raise _failed(ws, f"to give the noise floor of {len(rows)} rows", exc) from exc
    if floor is None:
        return None
    try:
        value = float(floor)
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value):
        raise ConfigError(f"the reference '{_factory_text(ws)}' gave {floor!r} as the noise floor of "
                          f"{len(rows)} rows, not a finite number",
                          "return a number, or None when the floor is not known for the metric")
    return value


def expected_decisions(ws: Workspace, ref: Reference, windows: Sequence[str], *,
                       first_has_champion: bool = True) -> dict[str, Truth]:
    """The reference's truth per window, for the windows it knows; the first window's cycle
    began without a champion unless ``first_has_champion``."""
    out: dict[str, Truth] = {}
    for i, window in enumerate(windows):
        try:
            t = ref.truth(window, has_champion=i > 0 or first_has_champion, config=ws.config)
        except ModelcycleError:
            raise
        except Exception as exc:
            raise _failed(ws, f"to give the truth of {window}", exc) from exc
        if t is None:
            continue
        if not isinstance(t, Truth) or t.expected not in DECISIONS:
            given = t.expected if isinstance(t, Truth) else type(t).__name__
            raise ConfigError(f"the reference '{_factory_text(ws)}' gave {given!r} as the truth of {window}",
                              "return a modelcycle.lifecycle.reference.Truth whose `expected` is one of "
                              f"{', '.join(DECISIONS)}, or None")
        out[window] = t
    return out


def check(results: Sequence[Any], truth: dict[str, Truth]) -> tuple[int, int, list[str]]:
    """(decisions right, decisions checked, the windows where they differ)."""
    wrong = [r.window for r in results if r.window in truth and not truth[r.window].matches(r.outcome)]
    checked = sum(1 for r in results if r.window in truth)
    return checked - len(wrong), checked, wrong
