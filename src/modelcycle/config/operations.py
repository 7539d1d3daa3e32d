"""pydantic models of ``modelcycle.yaml``'s operational sections: where decisions are announced,
the backends, serving, drift, automation, what the act keeps and how versions are pushed.

Kept apart from the sections that describe the model and its data (``config.models``), which
re-exports every name here, so ``from modelcycle.config.models import ServeConfig`` keeps working.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from modelcycle.config.sectionbase import Section


class NotifyConfig(Section):
    """Where decisions are announced."""

    console: bool = Field(default=True, description="print each decision")
    file: str | None = Field(
        default=".modelcycle/notifications.log",
        description="append each decision as a JSON line to this file (null: off)")
    urls: list[str] = Field(
        default_factory=list,
        description="Apprise URLs (slack://, mailto://, json://...); needs modelcycle[notify]. A "
        "password in one is written as a ${NAME} reference (environment or .env)")
    retries: int = Field(
        default=3, ge=0, le=10,
        description="how many more times a URL whose notification failed is tried (each URL on its "
        "own: one that is down never holds back the others, nor fails the cycle)")
    backoff_seconds: float = Field(
        default=0.5, ge=0, le=60,
        description="the wait before the first retry, doubled before each next one: 3 retries from "
        "0.5 wait 0.5 + 1 + 2 = 3.5 s at most, plus each attempt's own time (Apprise gives up on a "
        "silent server after its timeouts, 4 s to connect and 4 s to read by default; ?cto= and "
        "?rto= in the URL change them)")


EMBEDDED_ARTIFACTS = ".modelcycle/mlartifacts"  # backends.mlflow_artifacts' default (in the workspace)


class BackendsConfig(Section):
    """Where tracking, orchestration and data versions live. Defaults are embedded in the
    workspace; point them at a team's servers by changing URLs (or the environment variables
    MLFLOW_TRACKING_URI, MLFLOW_REGISTRY_URI, PREFECT_API_URL, MODELCYCLE_DVC_REMOTE, which win).
    A password in a URL is written as a ${NAME} reference, resolved from the environment or .env."""

    mlflow_tracking_uri: str = Field(
        default="sqlite:///.modelcycle/mlflow.db",
        description="MLflow tracking URI: sqlite:///path, http(s)://server, postgresql://...")
    mlflow_registry_uri: str | None = Field(default=None, description="MLflow registry URI (default: the tracking URI)")
    mlflow_artifacts: str | None = Field(default=EMBEDDED_ARTIFACTS, description=(
        "where a new experiment stores its artifacts (the models): a folder, s3://, gs://, "
        "a shared path. With an http(s):// tracking server, null or the embedded default folder lets the "
        "server choose (its served artifacts, mlflow-artifacts:), so every machine can load the models; "
        "with another store, null means the embedded default folder"))
    prefect_api_url: str | None = Field(
        default=None,
        description="a running Prefect server's API URL; null runs Prefect locally with its "
        "home in .modelcycle/prefect")
    dvc_remote: str | None = Field(default=".modelcycle/dvc-remote", description=(
        "DVC remote for data and model snapshots: a folder, s3://, gs://, azure://"))


class ReferenceConfig(Section):
    """Optional ground truth of the data: a noise floor per cycle, the right decision per window.

    A simulator or a benchmark may know the best score possible on any rows and, per window, what
    happened and the right decision. Each cycle then logs its score beside that noise floor, and a
    backtest checks every decision against the truth."""

    factory: str = Field(
        description="import path of a class or function that, called with `params`, returns the "
        "reference: an object with `label`, `noise_floor(rows, metric)` and `truth(window, "
        "has_champion=..., config=...)` (see modelcycle.lifecycle.reference), e.g. "
        "'modelcycle.examples.taxifare.scenario:TaxiReference' or 'reference:Truths' for a "
        "reference.py in the workspace")
    params: dict[str, Any] = Field(
        default_factory=dict, description="keyword arguments the factory is called with")


class ServeConfig(Section):
    """`modelcycle serve`: the HTTP server that answers predictions from the champion and follows
    the alias when it moves. Its presence marks the workspace as served: a cycle then checks that
    a new champion loads and predicts where it is served before the alias moves."""

    host: str = Field(
        default="127.0.0.1",
        description="the address to listen on; any other than the loopback (127.0.0.1, ::1, localhost) "
        "needs a token in MODELCYCLE_SERVE_TOKEN, which every request then sends as "
        "`Authorization: Bearer <token>`")
    port: int = Field(default=8080, ge=0, le=65535, description="the port (0: any free port, printed at start)")
    poll_seconds: float = Field(
        default=2.0, gt=0, description="how often the server reads the champion alias to follow a move")
    max_body_mb: float = Field(default=16, gt=0, description="a request body larger than this is refused (413)")
    image_paths: bool = Field(
        default=False,
        description="image models: read a file path a client sends in an image column from this server's disk; "
        "false (the default) refuses such a request (422) and takes only the image's base64 text or a "
        "data:image/...;base64, URI. true for a server that shares a disk with its clients")
    shadow: bool = Field(
        default=False,
        description="also score the challenger on each request, off the request path, and log both "
        "predictions under .modelcycle/predictions/ (the shadow report compares them)")
    key_columns: list[str] = Field(
        default_factory=list,
        description="request columns copied into the prediction log (the shadow report joins labels on them)")
    label_column: str | None = Field(
        default=None, description="the column holding the label when it arrives (default: data.target)")
    webhook_url: str | None = Field(
        default=None, pattern=r"^https?://",
        description="when the registry is an MLflow tracking server: the address at which that server reaches "
        "this server's /hooks/mlflow (default: the address it listens on + /hooks/mlflow); alias moves are then "
        "followed at once instead of at the next poll")


#: steps.drift.DEFAULT_THRESHOLD (config sits below steps, so the figure is repeated; a test keeps them equal)
DRIFT_THRESHOLD = 0.1


class DriftConfig(Section):
    """Drift: how far each column of a window moved from the champion's training rows (informs only).

    Each cycle with a champion compares the window's rows with the champion's training rows,
    column by column (the population stability index, PSI), logs the figures and says which
    columns drifted beside the decision; it never changes the decision."""

    enabled: bool = Field(default=True, description="measure drift in each cycle that has a champion")
    threshold: float = Field(
        default=DRIFT_THRESHOLD, gt=0.0,
        description="a column drifts when its PSI is above this (0.1: a moderate change; 0.2 is the usual "
        "rule of thumb for a significant one)")
    columns: list[str] | None = Field(
        default=None,
        description="the columns compared (default: every column of data.columns except the timestamp; the "
        "target is included, as a change of prices shows as its drift)")
    min_rows: int = Field(
        default=500, ge=1,
        description="between cycles (a data watcher's check), fewer rows of the current period than this "
        "give no drift figure: too few to tell a change from noise")


class AutomationConfig(Section):
    """Deployed cycles (`modelcycle deploy`, `modelcycle worker`): when fresh data starts a cycle,
    and how long a human has to answer an escalation in the Prefect UI."""

    check_seconds: float = Field(
        default=15.0, gt=0,
        description="how often `modelcycle worker` asks the source whether a new window is complete "
        "(one max(timestamp) query); a complete window starts its cycle through a Prefect event")
    settle_minutes: float = Field(
        default=0.0, ge=0,
        description="a window is complete once a row at or after its end has arrived, or once its end "
        "is this many minutes in the past and it has rows (late rows of a live source get this long)")
    approval_timeout_minutes: float = Field(
        default=1440.0, gt=0,
        description="a deployed cycle that escalates waits this long for a human's answer (Prefect UI, "
        "`modelcycle approve` / `reject`); then the champion is kept")
    work_pool: str = Field(
        default="modelcycle", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="the Prefect process work pool deployed cycles run in (`modelcycle worker` serves it)")


class ActConfig(Section):
    """What a cycle keeps of a challenger that is not promoted."""

    keep_rejected: bool = Field(
        default=True,
        description="true: every cycle is versioned whatever the decision (a git commit and tag, the "
        "DVC-tracked window and challenger, a registered model version as the challenger); false: a "
        "challenger that is not promoted (the gate keeps the champion, a human rejects an escalation or "
        "its approval times out, a suspect window keeps the champion) is rolled back: no commit, tag, "
        "DVC change, model version or alias move, only its MLflow run, tagged "
        "modelcycle.outcome=rolled_back with the reasons; the decision says rolled_back. An escalation "
        "still waiting for a human is versioned, so `modelcycle promote` can promote it")


class VersioningConfig(Section):
    """How a cycle's data and model reach the DVC remote (backends.dvc_remote)."""

    push: Literal["required", "best-effort"] = Field(
        default="required",
        description="required: a failed push to the DVC remote fails the cycle, which is rolled back "
        "(git commit and tag, DVC outputs, registry and aliases as before); best-effort: the cycle "
        "succeeds, says the push failed (output, notification, `modelcycle status`), and the next cycle "
        "or `modelcycle push` pushes it again")


class OrchestrationConfig(Section):
    """Where a cycle's candidates (params.yaml ``candidates:``) train: in threads of the cycle's
    process (Prefect's ThreadPoolTaskRunner), or on a Dask cluster (prefect-dask's DaskTaskRunner:
    pip install 'modelcycle[dask]')."""

    task_runner: Literal["threads", "dask"] = Field(
        default="threads",
        description="threads: the candidates train in threads of the cycle's process; dask: on a Dask "
        "cluster, a LocalCluster of processes on this machine (dask_address null) or a team's scheduler")
    dask_address: str | None = Field(
        default=None,
        description="a Dask scheduler's address, e.g. tcp://scheduler:8786 (its workers need modelcycle, "
        "the workspace's feature code and the Prefect API); null: a LocalCluster started for the cycle")
    dask_workers: int = Field(
        default=2, ge=1, le=64,
        description="the LocalCluster's worker processes (one thread each; LightGBM uses one thread per worker)")

    @field_validator("dask_address")
    @classmethod
    def _scheduler_address(cls, address: str | None) -> str | None:
        if address is not None and "://" not in address:
            raise ValueError(f"'{address}' is not a Dask scheduler address: write it as tcp://host:8786 "
                             "(or null for a LocalCluster on this machine)")
        return address
