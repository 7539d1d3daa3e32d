"""The workspace pipeline the versioning tests run against: the dvc.yaml that `init` shipped
before a cycle's rows were stored as month partitions (single Parquet files per stage). The
adapters know nothing of the layout, and such workspaces keep working; the partitioned layout
that `init` ships now is tested through real cycles in tests/integration/test_partitions.py."""

STAGES = ["fetch", "validate", "prepare", "train", "evaluate"]
TAG = "modelcycle/taxifare/2015-03"
DVC_YAML = """# The cycle's stages, reproducible with `dvc repro` and `dvc exp run -S model.learning_rate=0.1`
# (each experiment is also an MLflow run in the experiment <model name>-experiments).
# `modelcycle run` writes the same outputs in one Prefect flow and records them with `dvc commit`.
stages:
  fetch:
    cmd: modelcycle step fetch
    deps:
      - modelcycle.yaml
    params:
      - window
      - data
    outs:
      - data/raw.parquet
  validate:
    cmd: modelcycle step validate
    deps:
      - data/raw.parquet
      - modelcycle.yaml
    outs:
      - data/clean.parquet
    metrics:
      - reports/validation.json:
          cache: false
  prepare:
    cmd: modelcycle step prepare
    deps:
      - data/clean.parquet
    params:
      - window
      - split
    outs:
      - data/train.parquet
      - data/holdout.parquet
  train:
    cmd: modelcycle step train
    deps:
      - data/train.parquet
    params:
      - model
      - seed
    outs:
      - models/challenger
  evaluate:
    cmd: modelcycle step evaluate
    deps:
      - models/challenger
      - data/holdout.parquet
    outs:
      - reports/predictions.csv:
          cache: false
    metrics:
      - reports/metrics.json:
          cache: false
"""
CACHED = ["data/raw.parquet", "data/clean.parquet", "data/train.parquet", "data/holdout.parquet",
          "models/challenger"]
REPORTS = ["reports/validation.json", "reports/metrics.json", "reports/predictions.csv"]
# what a cycle's commit may hold: the files it writes, and the config the stages read
# (modelcycle.yaml, a dependency in dvc.yaml: committed as the cycle used it)
OWNED_COMMIT = {"dvc.lock", "params.yaml", "dvc.yaml", "data/.gitignore", "models/.gitignore", *REPORTS,
                "modelcycle.yaml"}
