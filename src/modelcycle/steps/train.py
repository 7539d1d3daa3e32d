"""Fit a challenger: the configured estimator on the configured features."""

from __future__ import annotations

import difflib
import functools
import inspect
import numbers
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from modelcycle.errors import ConfigError, DataError, ModelError
from modelcycle.steps.imports import resolve
from modelcycle.steps.model import ModelPipeline, encode_categories, learn_categories


@dataclass(frozen=True)
class TrainSpec:
    """Everything ``fit`` needs, from modelcycle.yaml and params.yaml."""

    estimator: str
    target: str
    task: str
    input_columns: list[str]
    features: str | None = None
    feature_columns: list[str] | None = None
    params: dict[str, Any] = field(default_factory=dict)
    seed: int = 42
    #: The workspace folder: a relative path among ``params`` (a torch backbone file) is read from there.
    root: str | None = None


@dataclass
class Trained:
    """A trainer's result (:class:`modelcycle.steps.trainers.Trainer`): ``model`` is what its
    ``predict`` and ``save`` take (the ``sklearn`` trainer's is a :class:`ModelPipeline`)."""

    model: Any
    fit_seconds: float  # feature building + estimator fit
    rows: int
    #: A trainer that learns in epochs: one entry per epoch, ``{"epoch": n, "train_loss": ..., ...}``
    #: (metric name -> value), logged to MLflow as steps and written as the learning curve.
    history: list[dict[str, float]] = field(default_factory=list)
    #: The epoch whose weights ``model`` holds (the best one on the validation rows), when it learns in epochs.
    best_epoch: int | None = None


def _init_parameters(cls: Any) -> list[inspect.Parameter]:
    """The keyword parameters of ``cls(...)`` (a class's ``__init__``, or a factory function)."""
    target = cls.__init__ if inspect.isclass(cls) else cls
    try:
        return list(inspect.signature(target).parameters.values())[1 if inspect.isclass(cls) else 0:]
    except (TypeError, ValueError):
        return []


def _accepts(cls: type, name: str) -> bool:
    params = _init_parameters(cls)
    return any(p.name == name for p in params) or any(p.kind is p.VAR_KEYWORD for p in params)


@functools.lru_cache(maxsize=1)
def _lightgbm_names() -> frozenset[str]:
    """Every parameter name and alias LightGBM itself knows (its C library's list), or an empty
    set when this LightGBM does not expose it."""
    try:
        from lightgbm.basic import _ConfigAliases

        table = _ConfigAliases._get_all_param_aliases()
    except Exception:  # noqa: BLE001 - a private API: if it moves, fall back to the lenient check
        return frozenset()
    return frozenset(str(name) for names in table.values() for name in names)


@dataclass(frozen=True)
class _Known:
    """What modelcycle knows of an estimator's parameters."""

    own: dict[str, Any]  # constructor parameters -> default (``inspect.Parameter.empty`` if none)
    extra: frozenset[str]  # other accepted names (LightGBM's own parameters and aliases)
    complete: bool  # False: the estimator takes **kwargs and we have no full list
    constraints: dict[str, Any]  # scikit-learn's ``_parameter_constraints``, when declared


def _known_parameters(cls: Any) -> _Known:
    own: dict[str, Any] = {}
    var_keyword = False
    for p in _init_parameters(cls):
        if p.kind is p.VAR_KEYWORD:
            var_keyword = True
        elif p.kind is not p.VAR_POSITIONAL:
            own[p.name] = p.default
    if inspect.isclass(cls) and hasattr(cls, "get_params"):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                defaults = cls().get_params(deep=False)  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001 - needs arguments, or its get_params misbehaves: the signature is enough
            defaults = {}
        for name, value in defaults.items():
            if own.get(name, inspect.Parameter.empty) is inspect.Parameter.empty:
                own[str(name)] = value
    extra: frozenset[str] = frozenset()
    complete = not var_keyword
    if var_keyword and getattr(cls, "__module__", "").startswith("lightgbm"):
        extra = _lightgbm_names()
        complete = bool(extra)
    constraints = getattr(cls, "_parameter_constraints", None)
    return _Known(own, extra, complete, constraints if isinstance(constraints, dict) else {})


def _closest(key: str, names: list[str], cutoff: float) -> str | None:
    """The name nearest to ``key`` (ignoring case), or None when none is at least ``cutoff`` alike."""
    best, best_ratio = None, cutoff
    for name in names:  # in order of preference: the first of equally close names wins
        ratio = difflib.SequenceMatcher(None, key.lower(), name.lower()).ratio()
        if ratio > best_ratio or (best is None and ratio >= best_ratio):
            best, best_ratio = name, ratio
    return best


#: scikit-learn constraint words that never take text.
_NO_TEXT = {"boolean", "verbose", "random_state", "nan", "array-like", "sparse matrix"}


def _text_rule(constraints: Any) -> tuple[bool, list[str] | None]:
    """What text a scikit-learn parameter takes, from its ``_parameter_constraints`` entry:
    ``(True, None)`` any text (or we cannot tell), ``(True, words)`` only these words,
    ``(False, None)`` no text at all."""
    if not isinstance(constraints, (list, tuple)):
        return True, None
    words: list[str] = []
    for c in constraints:
        if type(c).__name__ == "Hidden":
            c = getattr(c, "constraint", c)
        if c is None or c is callable or (isinstance(c, str) and c in _NO_TEXT):
            continue
        if isinstance(c, type):
            if issubclass(str, c):  # str itself, or object
                return True, None
            continue
        kind = type(c).__name__
        if kind in ("Interval", "HasMethods"):
            continue
        options = getattr(c, "options", None)
        if kind in ("StrOptions", "Options") and isinstance(options, (set, frozenset, list, tuple)):
            words.extend(str(o) for o in options if isinstance(o, str))
            continue
        return True, None  # a constraint we do not know: let the estimator judge
    return (True, sorted(words)) if words else (False, None)


def _kind_of(default: Any, constraints: Any) -> str | None:
    """A number/bool parameter's expected kind in words, from its default or its constraints."""
    if isinstance(default, (bool, np.bool_)):
        return "true or false"
    if isinstance(default, (int, np.integer)):
        return "a whole number"
    if isinstance(default, (float, np.floating)):
        return "a number"
    if isinstance(constraints, (list, tuple)):
        kinds = []
        for c in constraints:
            number_type = getattr(c, "type", None) if type(c).__name__ == "Interval" else c
            if c == "boolean":
                kinds.append("true or false")
            elif isinstance(number_type, type) and issubclass(number_type, numbers.Integral):
                kinds.append("a whole number")
            elif isinstance(number_type, type) and issubclass(number_type, numbers.Real):
                kinds.append("a number")
        if kinds:
            return " or ".join(dict.fromkeys(kinds))
    return None


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _value_problem(key: str, value: Any, known: _Known, estimator: str) -> tuple[str, str] | None:
    """(message, hint) when ``value`` is text where the estimator wants a number, a bool or one of
    a few words; None when it is fine or we cannot tell."""
    if not isinstance(value, str):
        return None
    default = known.own.get(key, inspect.Parameter.empty)
    constraints = known.constraints.get(key)
    where = f"params.yaml `model.{key}`"
    if constraints is not None:
        any_text, words = _text_rule(constraints)
        if any_text and words is None:
            return None
        if words is not None and value in words:
            return None
        kind = _kind_of(default, constraints)
        if words:
            choices = ", ".join(f"'{w}'" for w in words)
            kind = f"{kind} or one of {choices}" if kind else f"one of {choices}"
            guess = _closest(value, words, 0.6)
            if guess is not None:
                return (f"{where} is '{value}', which {estimator} does not accept: it expects {kind}; "
                        f"did you mean '{guess}'?", f"write `{key}: {guess}` under `model:` in params.yaml")
    else:
        kind = _kind_of(default, None)
    if kind is None:
        return None
    shown = f" (its default is {default!r})" if default not in (inspect.Parameter.empty, None) else ""
    message = f"{where} is the text {value!r}, but {estimator} expects {kind} there{shown}"
    if _looks_numeric(value):
        hint = f"write the number without quotes: `{key}: {value.strip()}`"
        if "e" in value.lower() and "." not in value:
            hint = ("write the number without quotes and with a dot: YAML reads a number with an "
                    f"exponent but no dot ({value.strip()}) as text; write e.g. `{key}: {float(value)!r}`")
    elif value.strip().lower() in ("true", "false", "yes", "no", "on", "off") and kind.startswith("true"):
        truth = "true" if value.strip().lower() in ("true", "yes", "on") else "false"
        hint = f"write `{key}: {truth}` without quotes"
    else:
        hint = f"give `{key}` {kind} under `model:` in params.yaml, or remove it to use the default"
    return message, hint


def check_params(cls: Any, params: dict[str, Any], estimator: str) -> None:
    """Refuse a params.yaml ``model:`` key the estimator does not take, or a value of the wrong kind.

    Known parameters are the constructor's signature and ``get_params()``, plus LightGBM's own
    parameter names and aliases for LightGBM's scikit-learn classes. For another estimator that
    takes ``**kwargs`` (no full list), only a close misspelling of a known parameter is refused.
    Values: text where the parameter wants a number or true/false (by its default, or by
    scikit-learn's declared constraints) is refused; anything else is left to the estimator.
    """
    known = _known_parameters(cls)
    names = list(known.own) + sorted(known.extra - set(known.own))
    problems: list[tuple[str, str]] = []
    for key, value in params.items():
        key = str(key)
        if key in known.own or key in known.extra:
            problem = _value_problem(key, value, known, estimator)
            if problem is not None:
                problems.append(problem)
            continue
        if known.complete:
            guess = _closest(key, names, 0.6)
        else:
            guess = _closest(key, names, 0.8)
            if guess is None:
                continue  # **kwargs: an unknown name may be fine; only a near miss is refused
        mean = f"; did you mean '{guess}'?" if guess else ""
        takes = ", ".join(sorted(known.own)) or "no keyword parameters"
        also = (" or any LightGBM parameter or alias (https://lightgbm.readthedocs.io/en/latest/Parameters.html)"
                if known.extra else "")
        problems.append((f"params.yaml `model.{key}`: the estimator {estimator} does not accept a parameter "
                         f"'{key}'{mean}",
                         f"fix or remove the key under `model:` in params.yaml; {estimator} takes {takes}{also}"))
    if len(problems) == 1:
        raise ConfigError(*problems[0])
    if problems:
        raise ConfigError(f"params.yaml `model:` has {len(problems)} problems:\n"
                          + "\n".join(f"- {message}" for message, _ in problems),
                          "\n".join(dict.fromkeys(hint for _, hint in problems)))


def build_estimator(spec: TrainSpec) -> Any:
    """The estimator of ``spec``, with its params.yaml ``model:`` values checked first."""
    cls = resolve(spec.estimator, what="estimator", field="model.estimator")
    check_params(cls, spec.params, spec.estimator)
    params = dict(spec.params)
    if "random_state" not in params and _accepts(cls, "random_state"):
        params["random_state"] = spec.seed
    if cls.__module__.startswith("lightgbm") and "verbose" not in params and "verbosity" not in params:
        params["verbose"] = -1
    try:
        return cls(**params)
    except TypeError as exc:
        raise ConfigError(
            f"the estimator {spec.estimator} does not accept these params.yaml `model:` values: {exc}",
            "fix or remove the offending key under `model:` in params.yaml") from exc


def feature_frame(spec: TrainSpec, frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    if spec.features:
        build = resolve(spec.features, what="feature builder", field="features.builder")
        try:
            feats = build(frame)
        except Exception as exc:  # a user's function: report it, with its own message
            raise ModelError(f"the feature builder {spec.features} failed: {type(exc).__name__}: {exc}",
                             "run it on a few rows of the source to see why") from exc
        if not isinstance(feats, pd.DataFrame) or len(feats) != len(frame):
            raise ModelError(f"the feature builder {spec.features} must return a DataFrame with one row per input row")
        return feats, [str(c) for c in feats.columns]
    cols = spec.feature_columns or [c for c in spec.input_columns if c != spec.target]
    return frame[cols], list(cols)


def fit(train: pd.DataFrame, spec: TrainSpec) -> Trained:
    """Train the estimator on ``train`` and wrap it with its feature building."""
    estimator = build_estimator(spec)  # params.yaml mistakes surface before any work
    if len(train) == 0:
        raise DataError("there are no rows to train on")
    started = time.perf_counter()
    X, names = feature_frame(spec, train)
    y = train[spec.target]
    if spec.task == "classification" and y.nunique() < 2:
        raise DataError(f"the training rows hold a single class of '{spec.target}' ({y.iloc[0]!r})",
                        "a classifier needs at least two classes: widen the window or the history")
    categories = learn_categories(X)
    X = encode_categories(X, categories)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=UserWarning)
            estimator.fit(X, y)
    except Exception as exc:
        raise ModelError(f"training {spec.estimator} failed: {type(exc).__name__}: {exc}",
                         "check the hyper-parameters under `model:` in params.yaml and the feature columns") from exc
    seconds = time.perf_counter() - started
    classes = [c.item() if isinstance(c, np.generic) else c for c in getattr(estimator, "classes_", [])] or None
    model = ModelPipeline(
        estimator=estimator, target=spec.target, task=spec.task,
        input_columns=[c for c in spec.input_columns if c != spec.target],
        feature_names=names, features=spec.features, classes=classes, categories=categories,
        metadata={"estimator": spec.estimator, "params": dict(spec.params), "train_rows": len(train)})
    return Trained(model=model, fit_seconds=seconds, rows=len(train))
