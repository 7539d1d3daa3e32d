#!/usr/bin/env bash
# Install modelcycle with every direct dependency at the lowest version pyproject.toml allows
# (uv's --resolution lowest-direct) in a throwaway environment, and run the unit tests and the
# integration tests of the adapters against it: a lower bound that is too low shows up here.
# Usage: scripts/lowest_bounds.sh [folder for the environment, default: a temporary one]
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
venv="${1:-$(mktemp -d)/lowest}"
uv="$here/.venv/bin/uv"
python3.11 -m venv "$venv"
"$uv" pip install --quiet --python "$venv/bin/python" --resolution lowest-direct -e "$here[dev]"
"$uv" pip list --python "$venv/bin/python" 2>/dev/null \
  | grep -Ei '^(dvc|dvc-data|duckdb|filelock|mlflow|numpy|pandas|scikit-learn|sqlalchemy) ' || true
cd "$here"
PYTHONPATH="$here/src" PREFECT_SERVER_ANALYTICS_ENABLED=false DO_NOT_TRACK=true MLFLOW_DISABLE_TELEMETRY=true \
  "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/unit tests/integration/test_own_data.py \
  tests/integration/test_registry_mlflow.py tests/integration/test_versioning_dvcgit.py \
  tests/integration/test_predict_proba.py
