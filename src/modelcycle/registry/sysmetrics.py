"""CPU, memory, disk and network of this machine, sampled into an MLflow run.

MLflow's ``SystemMetricsMonitor`` is started for a run id with the registry's tracking URI: no
active fluent run is needed. Without psutil, or when the monitor cannot start, nothing is
sampled and the block runs as usual.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

log = logging.getLogger(__name__)


@contextlib.contextmanager
def sampled_into(run_id: str, *, tracking_uri: str, interval: float) -> Iterator[None]:
    """Sample this machine into run ``run_id`` (``system/...`` metrics, one step per
    ``interval`` seconds, plus one at the end) while the block runs."""
    monitor: Any = None
    try:
        import psutil  # noqa: F401  (MLflow's CPU monitor needs it)
        from mlflow.system_metrics import system_metrics_monitor

        monitor_class: Any = system_metrics_monitor.SystemMetricsMonitor  # untyped in MLflow
        monitor = monitor_class(run_id, sampling_interval=interval, samples_before_logging=1,
                                tracking_uri=tracking_uri)
        monitor.start()
    except Exception as exc:  # noqa: BLE001 - sampling is optional: the run goes on without it
        log.debug("system metrics unavailable for run %s: %s", run_id, exc)
        monitor = None
    try:
        yield
    finally:
        if monitor is not None:
            try:
                monitor.finish()
                # A last sample, so that a block shorter than the interval still leaves one.
                monitor.collect_metrics()
                monitor.publish_metrics(monitor.aggregate_metrics())
                monitor.mlflow_logger.flush()
            except Exception as exc:  # noqa: BLE001 - a lost last sample must not fail the run
                log.debug("could not flush system metrics of run %s: %s", run_id, exc)
