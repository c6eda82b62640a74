"""A real MLflow SQLite store for the tests of this folder (see ``tests.lifecycle``)."""

from tests.lifecycle import mlflow_root, registry, tracking

__all__ = ["mlflow_root", "registry", "tracking"]
