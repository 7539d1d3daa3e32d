"""pydantic models of ``modelcycle.yaml`` and ``params.yaml``.

One model per section, every field described (the descriptions are the text of
``modelcycle config``), ``extra="forbid"`` so a misspelt key is an error that names the key and
the file. Paths are relative to the workspace root.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from modelcycle.config.imagerules import (IMAGE_RULES, check_image_columns, check_modes, check_sizes,
                                          class_ratio_limit)
from modelcycle.config.operations import (DRIFT_THRESHOLD, EMBEDDED_ARTIFACTS, ActConfig, AutomationConfig,
                                          BackendsConfig, DriftConfig, NotifyConfig, OrchestrationConfig,
                                          ReferenceConfig, ServeConfig, VersioningConfig)
from modelcycle.config.plugins import SOURCE_GROUP, TRAINER_GROUP, check_kind
from modelcycle.config.sectionbase import Section

__all__ = ["DRIFT_THRESHOLD", "EMBEDDED_ARTIFACTS", "ActConfig", "AutomationConfig", "BackendsConfig", "DriftConfig",
           "NotifyConfig", "OrchestrationConfig", "ReferenceConfig", "ServeConfig",
           "VersioningConfig"]  # re-exported: see config.operations

ColumnType = Literal["float", "int", "datetime", "str", "bool", "category", "image"]


class SourceConfig(Section):
    """Where the rows come from. Every source is queried by time window."""

    kind: str = Field(
        description="duckdb: a DuckDB database file; sql: any SQLAlchemy URL (postgresql://, "
        "sqlite:///, ...); files: Parquet or CSV files matched by a glob; images: a folder of image "
        "files, one sub-folder per class; or a kind an installed package adds (entry point group "
        "'modelcycle.sources').")
    url: str = Field(
        description="duckdb: path of the database file; sql: the SQLAlchemy URL; files: a glob "
        "such as data/rides-*.csv; images: the folder holding one sub-folder per class "
        "(data/images/<class>/<file>.png|jpg|jpeg|bmp|gif|webp). Relative paths are relative to the "
        "workspace. Write a password as a reference, user:${MODELCYCLE_SOURCE_PASSWORD}@host, set in "
        "the environment or .env.")
    table: str | None = Field(
        default=None, description="duckdb/sql: the table (or view) to read. Give this or `query`.")
    query: str | None = Field(
        default=None,
        description="duckdb/sql: a SELECT to read from instead of `table`; modelcycle wraps it "
        "and filters it by the window on the timestamp column.")
    format: Literal["csv", "parquet"] | None = Field(
        default=None, description="files: the file format; guessed from the suffix when absent.")
    index: str | None = Field(
        default=None,
        description="images: a CSV file with the columns path,label,added_at (path relative to the "
        "images folder, or absolute inside the workspace; added_at a timestamp, UTC unless it names "
        "its zone). It is the truth of each file's window and label: a file it does not list is "
        "ignored, a row whose file is missing is dropped and counted by validation. Without it, a "
        "file's label is its class folder and its added_at the file's modification time, which a git "
        "checkout, a copy or an unzip resets: give an index whenever windows matter.")

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, kind: str) -> str:
        return check_kind(SOURCE_GROUP, "source kind", kind)

    @model_validator(mode="after")
    def _table_or_query(self) -> SourceConfig:
        if self.kind in ("duckdb", "sql") and not (self.table or self.query):
            raise ValueError(f"a '{self.kind}' source needs `table` or `query`")
        if self.table and self.query:
            raise ValueError("give `table` or `query`, not both")
        if self.index is not None and self.kind in ("duckdb", "sql", "files"):
            raise ValueError(f"`index` is for an `images` source, not a '{self.kind}' one: remove it")
        return self


class RuleConfig(Section):
    """Value rules of one column. Rows that break one are dropped and counted."""

    min: float | None = Field(default=None, description="smallest allowed value (inclusive)")
    max: float | None = Field(default=None, description="largest allowed value (inclusive)")
    allowed: list[Any] | None = Field(default=None, description="the only values allowed")
    not_null: bool = Field(default=True, description="drop rows where the column is empty")
    size: tuple[int, int] | None = Field(
        default=None, description="image columns: the exact size [width, height] in pixels; images of "
        "another size are dropped and counted")
    min_size: tuple[int, int] | None = Field(
        default=None, description="image columns: the smallest [width, height]; smaller images are dropped")
    max_size: tuple[int, int] | None = Field(
        default=None, description="image columns: the largest [width, height]; larger images are dropped")
    modes: list[str] | None = Field(
        default=None, description="image columns: the allowed Pillow modes (L: greyscale, RGB, RGBA, "
        "P: palette, 1, LA, I, F, CMYK, ...); images of another mode are dropped and counted")

    @model_validator(mode="after")
    def _image_rules(self) -> RuleConfig:
        check_sizes({"size": self.size, "min_size": self.min_size, "max_size": self.max_size})
        check_modes(self.modes)
        return self

    def image_rules(self) -> list[str]:
        """The image rules given (size, min_size, max_size, modes): valid for image columns only."""
        return [k for k in IMAGE_RULES if getattr(self, k) is not None]


class DataConfig(Section):
    """The table's contract: timestamp, target, task, schema and cleaning rules."""

    timestamp: str = Field(description="the column that places a row in time (windows filter on it)")
    target: str = Field(description="the column the model predicts")
    task: Literal["regression", "classification"] = Field(
        default="regression", description="regression or classification")
    columns: dict[str, ColumnType] = Field(
        description="the schema: every column the cycle needs, with its type (float, int, "
        "datetime, str, bool, category, image: an image file's path, its bytes or a base64 string). "
        "A missing column or one of another type stops the cycle.")
    rules: dict[str, RuleConfig] = Field(
        default_factory=dict,
        description="value rules per column (min, max, allowed, not_null; for image columns also "
        "size, min_size, max_size, modes); rows that break them are dropped, counted and reported")
    max_invalid_fraction: float = Field(
        default=0.1, ge=0.0, le=1.0,
        description="if more than this share of a window's rows is dropped, the data is suspect: "
        "the cycle does not promote and acts as `gate.on_bad_data` says")
    max_class_ratio: float | None = Field(
        default=None, gt=1.0,
        description="classification: if the window's largest class has more than this many times the "
        "rows of its smallest, the data is suspect (as with max_invalid_fraction); so is a window in "
        "which a class listed in rules.<target>.allowed has no row. Default: 10 when a column has type "
        "image, no limit for tables (a table's rare class, fraud say, is often rarer than 1 in 10)")

    @model_validator(mode="after")
    def _columns_known(self) -> DataConfig:
        for name, what in ((self.timestamp, "timestamp"), (self.target, "target")):
            if name not in self.columns:
                raise ValueError(f"the {what} column '{name}' is not listed in `columns`")
        if self.columns[self.timestamp] != "datetime":
            raise ValueError(f"the timestamp column '{self.timestamp}' must have type datetime")
        unknown = sorted(set(self.rules) - set(self.columns))
        if unknown:
            raise ValueError(f"`rules` name column(s) not in `columns`: {', '.join(unknown)}")
        check_image_columns(self.columns, {name: rule.image_rules() for name, rule in self.rules.items()})
        return self

    def class_ratio_limit(self) -> float | None:
        """The class imbalance limit in force: ``max_class_ratio``, else 10 with an image column."""
        return class_ratio_limit(self.max_class_ratio, self.columns)


class FeaturesConfig(Section):
    """How raw rows become model inputs."""

    builder: str | None = Field(
        default=None,
        description="import path of a function frame -> feature frame, e.g. "
        "'modelcycle.examples.taxifare.features:taxi_features' or 'features:build' for a features.py in the "
        "workspace; it is packaged inside the logged model")
    columns: list[str] | None = Field(
        default=None,
        description="without a builder: the raw columns to use as features (default: every "
        "schema column except the target and the timestamp)")


class ModelConfig(Section):
    """The trainer and its estimator. Its hyper-parameters live in params.yaml under `model:`."""

    estimator: str = Field(
        default="lightgbm:LGBMRegressor",
        description="import path of a scikit-learn style estimator class, e.g. "
        "'lightgbm:LGBMRegressor', 'sklearn.ensemble:HistGradientBoostingClassifier'")
    trainer: str = Field(
        default="sklearn",
        description="how the model is trained, predicts and is saved: sklearn (a scikit-learn style "
        "`estimator`, LightGBM included), torch (an image classifier on the `image` column in PyTorch: "
        "pip install 'modelcycle[torch]'), or a trainer an installed package adds (entry point "
        "group 'modelcycle.trainers')")

    @field_validator("trainer")
    @classmethod
    def _known_trainer(cls, trainer: str) -> str:
        return check_kind(TRAINER_GROUP, "trainer", trainer)


Metric = Literal["mae", "rmse", "mape", "r2", "accuracy", "f1", "log_loss", "roc_auc"]


class GateConfig(Section):
    """When a challenger replaces the champion: on evidence, not on a difference of two numbers."""

    threshold: float = Field(
        description="the absolute bar a serving model must meet on the metric (e.g. MAE <= 2.5)")
    min_effect: float = Field(
        default=0.01, ge=0.0,
        description="the smallest relative improvement worth a deployment (0.01 = 1%): the challenger "
        "is promoted only when the interval of its improvement over the champion, on the same "
        "held-out rows, lies above this")
    confidence: float = Field(
        default=0.95, gt=0.5, lt=1.0,
        description="confidence of the two-sided interval of the improvement")
    resamples: int = Field(
        default=2000, ge=100, le=100_000, description="paired bootstrap resamples")
    seed: int = Field(default=0, description="seed of the resampling (decisions are reproducible)")
    test: Literal["bootstrap", "none"] = Field(
        default="bootstrap",
        description="bootstrap: a paired bootstrap interval of the improvement; none: compare the two "
        "numbers only (what most tools do; on small holdouts noise then promotes models)")
    method: Literal["double-or-nothing", "multinomial"] = Field(
        default="double-or-nothing",
        description="bootstrap weights: double-or-nothing (each row weighted 0 or 2; fast) or "
        "multinomial (rows drawn with replacement; the textbook bootstrap, about 7x slower)")
    on_bad_data: Literal["escalate", "keep"] = Field(
        default="escalate",
        description="what to decide when more than data.max_invalid_fraction of the window fails "
        "validation: escalate to a human or keep the champion")


#: What an older modelcycle.yaml's `simulation:` section (the taxi simulator's seed and size) means
#: today: the taxifare example's reference, named by its import path (the core never imports it).
LEGACY_SIMULATION_FACTORY = "modelcycle.examples.taxifare.scenario:TaxiReference"
LEGACY_SIMULATION_KEYS = ("seed", "rows_per_month", "start", "end")


class ProjectConfig(Section):
    """modelcycle.yaml: the lifecycle of one model."""

    name: str = Field(
        pattern=r"^[A-Za-z][A-Za-z0-9_.-]*$",
        description="the model's name: registered model and experiment in MLflow, tag prefix in git")
    source: SourceConfig
    data: DataConfig
    features: FeaturesConfig = Field(default_factory=FeaturesConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    metric: Metric = Field(description="the metric both models are scored with")
    gate: GateConfig
    notify: NotifyConfig = Field(default_factory=NotifyConfig)
    backends: BackendsConfig = Field(default_factory=BackendsConfig)
    reference: ReferenceConfig | None = Field(
        default=None,
        description="optional: ground truth the data comes with (the taxifare example's simulator has one)")
    serve: ServeConfig | None = Field(
        default=None,
        description="optional: `modelcycle serve` settings; the section's presence marks a served workspace")
    drift: DriftConfig = Field(default_factory=DriftConfig)
    automation: AutomationConfig = Field(
        default_factory=AutomationConfig,
        description="deployed cycles: the data check's interval, the approval timeout, the work pool")
    act: ActConfig = Field(
        default_factory=ActConfig,
        description="what a cycle keeps of a challenger that is not promoted (keep_rejected)")
    versioning: VersioningConfig = Field(
        default_factory=VersioningConfig, description="whether a failed push to the DVC remote fails the cycle")
    orchestration: OrchestrationConfig = Field(
        default_factory=OrchestrationConfig,
        description="where params.yaml's candidates train: threads (default) or a Dask cluster")

    @model_validator(mode="before")
    @classmethod
    def _simulation_is_a_reference(cls, data: Any) -> Any:
        """A modelcycle.yaml written before the taxi simulator became an example (every taxifare
        workspace made by `init --example taxifare` or `demo` until then) has a `simulation:`
        section; it still loads, as the reference it meant."""
        if not isinstance(data, dict) or "simulation" not in data:
            return data
        data = dict(data)
        sim = data.pop("simulation")
        if sim is None:
            return data
        if not isinstance(sim, dict):
            raise ValueError(f"`simulation` must be a mapping (seed, rows_per_month), got {sim!r}; "
                             f"newer workspaces say `reference:` instead")
        unknown = sorted(set(sim) - set(LEGACY_SIMULATION_KEYS))
        if unknown:
            raise ValueError(f"`simulation` has unknown key(s) {', '.join(map(str, unknown))} "
                             f"(known: {', '.join(LEGACY_SIMULATION_KEYS)})")
        if data.get("reference") is not None:
            raise ValueError("give `reference` or the older `simulation`, not both: remove `simulation`")
        data["reference"] = {"factory": LEGACY_SIMULATION_FACTORY,
                             "params": {k: sim[k] for k in ("seed", "rows_per_month") if k in sim}}
        return data

    @model_validator(mode="after")
    def _metric_fits_task(self) -> ProjectConfig:
        regression = {"mae", "rmse", "mape", "r2"}
        if (self.metric in regression) != (self.data.task == "regression"):
            raise ValueError(f"metric '{self.metric}' does not fit a {self.data.task} task")
        if self.features.columns:
            missing = [c for c in self.features.columns if c not in self.data.columns]
            if missing:
                raise ValueError(f"features.columns name column(s) not in data.columns: {', '.join(missing)}")
        if self.drift.columns:
            missing = [c for c in self.drift.columns if c not in self.data.columns]
            if missing:
                raise ValueError(f"drift.columns name column(s) not in data.columns: {', '.join(missing)}")
        return self

    def drift_columns(self) -> dict[str, str]:
        """The columns drift compares, with their types: ``drift.columns``, or every declared
        column except the timestamp."""
        names = self.drift.columns or [c for c in self.data.columns if c != self.data.timestamp]
        return {c: self.data.columns[c] for c in names}


# params.yaml ----------------------------------------------------------------------------------


class ParamsSection(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataParams(ParamsSection):
    history_months: int = Field(
        default=6, ge=0, description="months before the window the challenger also trains on")


class SplitParams(ParamsSection):
    holdout_fraction: float = Field(
        default=0.3, gt=0.0, lt=1.0,
        description="the latest share of the window held out to score both models")


MAX_CANDIDATES = 20
CANDIDATE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")


class Params(BaseModel):
    """params.yaml: what the pipeline steps read (DVC params)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    window: str | None = Field(default=None, description="the window of the latest cycle (set by the cycle)")
    seed: int = Field(default=42, description="random seed for training")
    data: DataParams = Field(default_factory=DataParams)
    split: SplitParams = Field(default_factory=SplitParams)
    model: dict[str, Any] = Field(default_factory=dict, description="estimator hyper-parameters")
    candidates: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="optional: several challengers trained at once, by name, each `model:` with these "
        "overrides (`base: {}` is `model:` as it is); the gate compares each with the champion, corrected "
        "for the number of candidates, and promotes at most one. `dvc exp run -S candidates.big.num_leaves=63`")

    @field_validator("candidates", mode="before")
    @classmethod
    def _named_overrides(cls, v: Any) -> Any:
        if v is None:
            return {}
        if not isinstance(v, dict):
            raise ValueError("candidates is a mapping of a name to the `model:` keys it overrides, e.g.\n"
                             "    candidates:\n      small: {num_leaves: 7}\n"
                             "      big: {num_leaves: 63, n_estimators: 400}")
        if len(v) > MAX_CANDIDATES:
            raise ValueError(f"{len(v)} candidates: at most {MAX_CANDIDATES} (each one widens the gate's "
                             "intervals: the correction for multiple comparisons)")
        out: dict[str, dict[str, Any]] = {}
        for name, overrides in v.items():
            if not isinstance(name, str) or not CANDIDATE_NAME.fullmatch(name):
                raise ValueError(f"candidate name {name!r}: use letters, digits, '_' or '-', starting with a letter")
            if overrides is None:
                overrides = {}
            if not isinstance(overrides, dict):
                raise ValueError(f"candidate '{name}' is {overrides!r}: it must be a mapping of `model:` keys to "
                                 f"values (write `{name}: {{}}` for `model:` as it is)")
            for key, value in overrides.items():
                if isinstance(value, dict):
                    raise ValueError(f"candidate '{name}' key '{key}' is a mapping: a candidate overrides "
                                     "`model:` keys with plain values")
            out[name] = {str(k): x for k, x in overrides.items()}
        return out

    @field_validator("window", mode="before")
    @classmethod
    def _window_str(cls, v: Any) -> Any:
        return None if v is None else str(v)
