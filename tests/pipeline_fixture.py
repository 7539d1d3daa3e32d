"""The workspace pipeline the versioning tests run against: the dvc.yaml that `init` ships."""

from importlib import resources

STAGES = ["fetch", "validate", "prepare", "train", "evaluate"]
TAG = "modelcycle/taxifare/2015-03"
DVC_YAML = resources.files("modelcycle.lifecycle").joinpath("templates", "dvc.yaml").read_text(encoding="utf-8")
CACHED = ["data/raw.parquet", "data/clean.parquet", "data/train.parquet", "data/holdout.parquet",
          "models/challenger"]
REPORTS = ["reports/validation.json", "reports/metrics.json", "reports/predictions.csv"]
# what a cycle's commit may hold: the files it writes, and the config the stages read
# (modelcycle.yaml, a dependency in dvc.yaml: committed as the cycle used it)
OWNED_COMMIT = {"dvc.lock", "params.yaml", "dvc.yaml", "data/.gitignore", "models/.gitignore", *REPORTS,
                "modelcycle.yaml"}
