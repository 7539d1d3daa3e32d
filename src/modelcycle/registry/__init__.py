"""Tracking and the model registry: an interface, the MLflow adapter and an in-memory fake."""

from modelcycle.registry.base import ModelVersion, Predictor, Registry, canonical_alias

__all__ = ["ModelVersion", "Predictor", "Registry", "canonical_alias"]
