"""Pure steps of a cycle: validate, features, split, train, evaluate.

Plain functions of data and parameters. They never import Prefect, MLflow or DVC (an
import-linter contract in pyproject.toml keeps it so), and this package's ``__init__`` stays
empty of imports so that a logged model can import ``modelcycle.steps.features`` cheaply.
"""
