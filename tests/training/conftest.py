"""Real MLflow stores for the tests of this folder: SQLite, and PostgreSQL for the tests
marked ``BOTH_STORES`` (see ``tests.lifecycle``)."""

from tests.lifecycle import mlflow_root, postgres_store, registry, tracking

__all__ = ["mlflow_root", "postgres_store", "registry", "tracking"]
