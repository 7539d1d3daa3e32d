"""A saved model directory logged to a run as an MLflow 3 "logged model".

How a model is stored
---------------------
:func:`modelcycle.registry.packaging.save_pyfunc_model` writes a pyfunc directory ("models from
code", the fitted pipeline as the artifact ``pipeline.pkl``, the ``modelcycle`` package under
``code/``, explicit pip requirements). :func:`log_model_dir` then does with the registry's
explicit client what ``Model.log`` does with the fluent one:
``create_logged_model(experiment, source_run_id=run)``, ``log_model_artifacts``, stamps
``model_id``/``run_id`` into ``MLmodel``, links the model to the run as an output and finalizes
it ``READY``. It returns ``models:/<model_id>``, which
:meth:`~modelcycle.registry.mlflow.MlflowRegistry.register` and
:meth:`~modelcycle.registry.mlflow.MlflowRegistry.load_model` accept. The model shows on the
run's and the experiment's "Logged models" pages (not under the run's artifacts, which is
MLflow 3's layout). ``mlflow.pyfunc.log_model`` is not used: it resolves the tracking URI from
global state and re-saves the model.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from modelcycle.errors import RegistryError
from modelcycle.registry.base import truncate
from modelcycle.registry.translate import translate

if TYPE_CHECKING:
    from mlflow import MlflowClient


def log_model_dir(client: MlflowClient, run_id: str, path: str, artifact_path: str = "model") -> str:
    """Upload the saved model directory ``path`` as a logged model of ``run_id`` named
    ``artifact_path``; returns ``models:/<model_id>``.

    Why a logged model and not run artifacts: in MLflow 3 a model is its own entity
    (``<experiment artifacts>/models/<model_id>/artifacts``) linked to the run as an output; the
    UI's model pages, ``models:/<model_id>`` URIs and the registry's lineage expect that layout.
    A failure part-way finalizes the logged model as FAILED.
    """
    from mlflow.entities import LoggedModelOutput
    from mlflow.models import Model
    from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH

    model_dir = Path(path)
    if not (model_dir / "MLmodel").is_file():
        raise RegistryError(f"{model_dir} is not an MLflow model directory (it has no MLmodel file)",
                            "write the model with save_model first")
    with translate(f"cannot log the model {model_dir} to run {run_id}"):
        run = client.get_run(run_id)
        params = {k: truncate(v, MAX_PARAM_VAL_LENGTH) for k, v in (run.data.params or {}).items()}
        logged = client.create_logged_model(
            run.info.experiment_id, name=artifact_path, source_run_id=run_id, params=params or None,
        )
        try:
            client.log_model_artifacts(logged.model_id, str(model_dir))
            mlmodel = Model.load(str(model_dir / "MLmodel"))
            mlmodel.model_id = logged.model_id
            mlmodel.run_id = run_id
            mlmodel.artifact_path = logged.artifact_location
            mlmodel.model_uuid = logged.model_id
            with tempfile.TemporaryDirectory(prefix="modelcycle-mlmodel-") as tmp:
                stamped = Path(tmp) / "MLmodel"
                mlmodel.save(str(stamped))
                client.log_model_artifact(logged.model_id, str(stamped))
            client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
            client.finalize_logged_model(logged.model_id, "READY")
        except BaseException:
            with contextlib.suppress(Exception):
                client.finalize_logged_model(logged.model_id, "FAILED")
            raise
    return f"models:/{logged.model_id}"
