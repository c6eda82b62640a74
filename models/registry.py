"""The MLflow model registry: which version an alias names, that version loaded, and the
writes of the model's lifecycle (moving an alias, tagging a version or the model).

An alias is resolved to a version number once, then that exact version is downloaded and
loaded, so a caller always knows which version it holds even if the alias moves meanwhile.
A loaded model is warmed (and checked) by scoring its stored input example before it is
handed out: a model that cannot score its own example is a load failure, not a surprise
on the first real request.

Three aliases: ``champion`` (served), ``previous`` (the champion before it, for rollback)
and ``challenger`` (a version the live service also scores, in the shadow, to gather live
evidence for promotion). Live evidence (``models.live_evidence``) is logged to a version's
run as time-stepped metrics (:meth:`ModelRegistry.log_live`) and read back as the latest
step of one version (:meth:`ModelRegistry.live_evidence`) or the latest step two versions
share (:meth:`ModelRegistry.common_live_evidence`).

Writers of the lifecycle (promotion, rollback, the challenger) read the aliases, decide
and write several aliases and tags: :meth:`ModelRegistry.writing` makes each such
read-decide-write one at a time across processes and hosts. Its lock is a registered model
of its own, ``<model>.writer-lock``: creating it succeeds for one writer only (the store's
unique name; the same through an MLflow server as on the database), deleting it releases
it. It names its holder and carries a lease: a lock left by a writer that died is broken
when its lease is over (:data:`LOCK_LEASE_S`; the writers' clocks must roughly agree).

Errors are typed and raised ``from`` the MLflow or LightGBM error behind them:
:class:`ModelNotFound` (no such registered model, alias or version),
:class:`RegistryUnavailable` (the tracking store did not answer),
:class:`RegistryBusy` (another writer held the lock for longer than the wait) and
:class:`ModelLoadError` (the version exists but cannot be downloaded, read or warmed).
"""

from __future__ import annotations

import math
import os
import random
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from models.classifier import ClassifierFormatError, ConnectClassifier, Floats, load_model
from models.connect_curve import ConnectCurveModel
from models.curve_files import is_curve_model, load_curve_model
from models.defaults import DEFAULT_MODEL_NAME
from models.live_evidence import LIVE_KEYS, LIVE_N, LiveEvidence, live_metrics
from models.model_types import ModelType
from models.reference import FeatureReference

CHAMPION: Final = "champion"
PREVIOUS: Final = "previous"
CHALLENGER: Final = "challenger"
TAG_LIMIT: Final = 4000
"""Longest tag value written (MLflow refuses longer ones); longer values are clipped."""
WRITER_LOCK_SUFFIX: Final = ".writer-lock"
"""The writer lock of model ``m`` is the registered model ``m.writer-lock``."""
LOCK_LEASE_S: Final = 120.0
"""How long a writer lock holds without its holder: then another writer may break it."""
LOCK_WAIT_S: Final = 60.0
"""How long a writer waits for the lock by default before :class:`RegistryBusy`."""
LOCK_POLL_S: Final = 0.05
_NOT_FOUND: Final = ("RESOURCE_DOES_NOT_EXIST",)
_EXISTS: Final = "RESOURCE_ALREADY_EXISTS"


class RegistryError(Exception):
    """Base of the registry's errors."""


class ModelNotFound(RegistryError):
    """No such registered model, alias or version."""


class RegistryUnavailable(RegistryError):
    """The tracking store could not be reached or answered with an error."""


class RegistryBusy(RegistryError):
    """Another writer held the model's writer lock for longer than the wait."""


class ModelLoadError(RegistryError):
    """The version exists but its artifacts cannot be downloaded, read or warmed."""


@dataclass(frozen=True)
class LoadedModel:
    """One registered version, loaded and warmed."""

    name: str
    version: str
    classifier: ConnectClassifier | ConnectCurveModel
    """The one-window classifier, or a time-to-connect model (``models.connect_curve``)."""
    input_example: Floats
    alias: str | None = None
    """The alias it was loaded through (None: loaded by version)."""
    run_id: str | None = None
    loaded_at: float = 0.0
    load_seconds: float = 0.0
    reference: FeatureReference | None = None
    """The features' training reference, of either model type (None: trained before
    references were stored with the model)."""

    @property
    def horizon_s(self) -> float:
        return self.classifier.horizon_s

    @property
    def feature_names(self) -> tuple[str, ...]:
        return self.classifier.feature_names

    def predict_proba(self, features: Floats) -> Floats:
        return self.classifier.predict_proba(features)

    @property
    def curve_model(self) -> ConnectCurveModel | None:
        """The time-to-connect model, when this version is one."""
        return self.classifier if isinstance(self.classifier, ConnectCurveModel) else None

    @property
    def model_type(self) -> ModelType:
        return ModelType.CLASSIFIER if self.curve_model is None else ModelType.CURVE


class ModelRegistry:
    """The versions and aliases of one registered model in one tracking store.

    Holds no connection of its own beyond an ``MlflowClient`` made on first use; safe to
    share between threads for reads, and for writes made within :meth:`writing`.
    """

    def __init__(
        self,
        tracking_uri: str,
        model_name: str = DEFAULT_MODEL_NAME,
        *,
        registry_uri: str | None = None,
    ) -> None:
        self.tracking_uri = tracking_uri
        self.registry_uri = registry_uri or tracking_uri
        self.model_name = model_name
        self._client: Any = None
        self._held = threading.local()

    def __repr__(self) -> str:
        return f"ModelRegistry({self.tracking_uri!r}, {self.model_name!r})"

    @property
    def client(self) -> Any:
        """The ``mlflow.MlflowClient`` of this store (made on first use)."""
        if self._client is None:
            from mlflow import MlflowClient

            self._client = MlflowClient(self.tracking_uri, self.registry_uri)
        return self._client

    # -- resolving -----------------------------------------------------------------------

    def resolve(self, alias: str = CHAMPION) -> str:
        """The version number ``alias`` names now; :class:`ModelNotFound` if none."""
        version = self.alias_version(alias)
        if version is None:
            raise ModelNotFound(f"{self.model_name!r} has no version with alias {alias!r}")
        return version

    def alias_version(self, alias: str) -> str | None:
        """The version ``alias`` names, or None when the model or the alias does not exist."""
        aliases = self.aliases()
        return aliases.get(alias)

    def aliases(self) -> dict[str, str]:
        """Every alias of the registered model and its version ({} if the model is unknown)."""
        model = self._call(
            lambda: self.client.get_registered_model(self.model_name), missing_ok=True
        )
        if model is None:
            return {}
        return {str(alias): str(version) for alias, version in dict(model.aliases).items()}

    def latest_version(self) -> str | None:
        """The highest version number, or None when the model has no version."""
        versions = self._call(
            lambda: self.client.search_model_versions(
                f"name='{self.model_name}'", order_by=["version_number DESC"], max_results=1
            ),
            missing_ok=True,
        )
        if not versions:
            return None
        return str(versions[0].version)

    def version_info(self, version: str) -> Any:
        """The ``ModelVersion`` record (tags, run id, source); :class:`ModelNotFound` if none."""
        info = self._call(
            lambda: self.client.get_model_version(self.model_name, str(version)), missing_ok=True
        )
        if info is None:
            raise ModelNotFound(f"{self.model_name!r} has no version {version}")
        return info

    # -- loading -------------------------------------------------------------------------

    def load_alias(self, alias: str = CHAMPION) -> LoadedModel:
        """Resolve ``alias`` once, then load exactly that version."""
        return self.load(self.resolve(alias), alias=alias)

    def load(self, version: str, *, alias: str | None = None) -> LoadedModel:
        """Download, load and warm one version."""
        started = time.perf_counter()
        info = self.version_info(version)
        uri = f"models:/{self.model_name}/{info.version}"
        # The artifacts' own location, not the models:/ URI: resolving that one goes through
        # MLflow's process-wide registry URI, which may point at another store.
        location = self._call(
            lambda: self.client.get_model_version_download_uri(self.model_name, str(info.version))
        )
        with tempfile.TemporaryDirectory(prefix="model-") as folder:
            try:
                from mlflow.artifacts import download_artifacts

                local = download_artifacts(
                    artifact_uri=location,
                    dst_path=folder,
                    tracking_uri=self.tracking_uri,
                    registry_uri=self.registry_uri,
                )
                model, example, reference = _load_directory(Path(local))
            except ClassifierFormatError as e:
                raise ModelLoadError(f"{uri}: {e}") from e
            except Exception as e:  # MLflow, LightGBM and I/O errors alike
                raise ModelLoadError(f"{uri} could not be loaded: {e}") from e
        warm(model, example, what=uri)
        return LoadedModel(
            name=self.model_name,
            version=str(info.version),
            classifier=model,
            input_example=example,
            alias=alias,
            run_id=info.run_id,
            loaded_at=time.time(),
            load_seconds=time.perf_counter() - started,
            reference=reference,
        )

    # -- writing -------------------------------------------------------------------------

    @property
    def lock_name(self) -> str:
        """The registered model that is this model's writer lock."""
        return f"{self.model_name}{WRITER_LOCK_SUFFIX}"

    @contextmanager
    def writing(
        self, *, wait_s: float = LOCK_WAIT_S, lease_s: float = LOCK_LEASE_S
    ) -> Iterator[str]:
        """Hold the model's writer lock (see the module) for the block; yields the holder's
        name. Waits up to ``wait_s`` for it (then :class:`RegistryBusy`); a lock whose
        ``lease_s`` is over is broken. Reentrant within a thread: a block inside another
        one of the same thread holds the same lock."""
        held: str | None = getattr(self._held, "token", None)
        if held is not None:
            yield held
            return
        token = self._acquire(wait_s, lease_s)
        self._held.token = token
        finished = False
        try:
            yield token
            finished = True
        finally:
            self._held.token = None
            try:
                self._release(token)
            except RegistryError:
                if finished:  # else the block's own error is the one to see
                    raise

    def _acquire(self, wait_s: float, lease_s: float) -> str:
        from mlflow.exceptions import MlflowException

        token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        deadline = time.monotonic() + wait_s
        while True:
            tags = {"holder": token, "expires": f"{time.time() + lease_s:.3f}"}
            try:
                self.client.create_registered_model(
                    self.lock_name,
                    tags=tags,
                    description=f"writer lock of {self.model_name!r} (models.registry)",
                )
                return token
            except MlflowException as e:
                # Held; or held and released meanwhile: on the name's unique violation the
                # SQL store reads the holder's model back, and finds none.
                if e.error_code != _EXISTS and e.error_code not in _NOT_FOUND:
                    raise RegistryUnavailable(f"{self.tracking_uri}: {e}") from e
            except OSError as e:
                raise RegistryUnavailable(f"{self.tracking_uri}: {e}") from e
            holder = self._lock_holder()
            if holder is not None and holder[1] < time.time():
                self._drop_lock(holder[0])  # its lease is over: its writer died
                continue
            if time.monotonic() >= deadline:
                who = f"{holder[0]} (lease until {holder[1]:.0f})" if holder else "another writer"
                raise RegistryBusy(
                    f"{self.lock_name!r} is held by {who}: waited {wait_s:.0f} s; retry later"
                )
            time.sleep(LOCK_POLL_S * (1 + random.random()))

    def _lock_holder(self) -> tuple[str, float] | None:
        """The lock's holder and the end of its lease (unix seconds); None when free."""
        lock = self._call(lambda: self.client.get_registered_model(self.lock_name), missing_ok=True)
        if lock is None:
            return None
        tags = dict(lock.tags)
        try:
            expires = float(tags.get("expires", "0"))
        except ValueError:
            expires = 0.0
        return str(tags.get("holder", "")), expires

    def _drop_lock(self, holder: str) -> None:
        """Delete the lock if ``holder`` still holds it."""
        current = self._lock_holder()
        if current is not None and current[0] == holder:
            self._call(lambda: self.client.delete_registered_model(self.lock_name), missing_ok=True)

    def _release(self, token: str) -> None:
        self._drop_lock(token)

    def set_alias(self, alias: str, version: str) -> None:
        """Point ``alias`` at ``version``."""
        self._call(lambda: self.client.set_registered_model_alias(self.model_name, alias, version))

    def delete_alias(self, alias: str) -> None:
        self._call(lambda: self.client.delete_registered_model_alias(self.model_name, alias))

    def tag_version(self, version: str, tags: Mapping[str, str]) -> None:
        """Set ``tags`` on ``version`` (values clipped to :data:`TAG_LIMIT`)."""
        for key, value in tags.items():
            self._call(
                lambda key=key, value=value: self.client.set_model_version_tag(
                    self.model_name, version, key, clip(value)
                )
            )

    def tag_model(self, key: str, value: str) -> None:
        """Set a tag on the registered model (value clipped to :data:`TAG_LIMIT`)."""
        self._call(lambda: self.client.set_registered_model_tag(self.model_name, key, clip(value)))

    # -- live evidence -------------------------------------------------------------------

    def log_live(self, version: str, metrics: Mapping[str, float], at: float) -> None:
        """Log live ``metrics`` (``models.live_evidence`` names, with or without the
        ``live_`` prefix; ``live_n`` required; non-finite values left out) to the run of
        ``version``, at step ``int(at)`` and timestamp ``int(at * 1000)``."""
        from mlflow.entities import Metric

        values = live_metrics(metrics)
        if not math.isfinite(at) or at < 0:
            raise ValueError(f"at must be a finite unix time, not {at}")
        run_id = self._run_id(version)
        batch = [Metric(key, value, int(at * 1000), int(at)) for key, value in values.items()]
        self._call(lambda: self.client.log_batch(run_id, metrics=batch))

    def live_evidence(self, version: str) -> LiveEvidence | None:
        """The live metrics of ``version`` at its latest logged step (that of ``live_n``);
        None when none was logged."""
        run_id = self._run_id(version)
        run = self._call(lambda: self.client.get_run(run_id))
        latest = {m.key: m for m in run.data.to_proto().metrics if m.key in LIVE_KEYS}
        n = latest.get(LIVE_N)
        if n is None:
            return None
        values = {k: float(m.value) for k, m in latest.items() if m.step == n.step}
        return LiveEvidence(str(version), int(n.step), n.timestamp / 1000, values)

    def common_live_evidence(
        self, first: str, second: str
    ) -> tuple[LiveEvidence, LiveEvidence] | None:
        """The live metrics of two versions at the latest step both were logged at (the
        service logs the champion and the challenger in one call); None when there is none."""
        a, b = self.live_evidence(first), self.live_evidence(second)
        if a is None or b is None:
            return None
        if a.step == b.step:
            return a, b
        histories = {v: self._live_history(v) for v in (first, second)}
        common = set(histories[first].get(LIVE_N, {})) & set(histories[second].get(LIVE_N, {}))
        if not common:
            return None
        step = max(common)
        return self._evidence_at(first, histories[first], step), self._evidence_at(
            second, histories[second], step
        )

    def _live_history(self, version: str) -> dict[str, dict[int, Any]]:
        """Per live key, the logged metrics by step (the latest timestamp of a step wins)."""
        run_id = self._run_id(version)
        out: dict[str, dict[int, Any]] = {}
        for key in LIVE_KEYS:
            history = self._call(lambda key=key: self.client.get_metric_history(run_id, key))
            steps: dict[int, Any] = {}
            for metric in sorted(history, key=lambda m: (m.step, m.timestamp)):
                steps[int(metric.step)] = metric
            out[key] = steps
        return out

    @staticmethod
    def _evidence_at(version: str, history: dict[str, dict[int, Any]], step: int) -> LiveEvidence:
        values = {k: float(by[step].value) for k, by in history.items() if step in by}
        return LiveEvidence(str(version), step, history[LIVE_N][step].timestamp / 1000, values)

    def _run_id(self, version: str) -> str:
        run_id = self.version_info(version).run_id
        if not run_id:
            raise ModelNotFound(f"version {version} of {self.model_name!r} has no run")
        return str(run_id)

    def _call(self, request: Any, *, missing_ok: bool = False) -> Any:
        from mlflow.exceptions import MlflowException

        try:
            return request()
        except MlflowException as e:
            if e.error_code in _NOT_FOUND:
                if missing_ok:
                    return None
                raise ModelNotFound(str(e)) from e
            raise RegistryUnavailable(f"{self.tracking_uri}: {e}") from e
        except OSError as e:
            raise RegistryUnavailable(f"{self.tracking_uri}: {e}") from e


def _load_directory(
    path: Path,
) -> tuple[ConnectClassifier | ConnectCurveModel, Floats, FeatureReference | None]:
    """The model of a downloaded version (a classifier, or a time-to-connect model), its
    input example and its features' training reference."""
    if is_curve_model(path):
        curve = load_curve_model(path)
        return curve.model, curve.input_example, curve.reference
    saved = load_model(path)
    return saved.classifier, saved.input_example, saved.reference


def clip(text: str) -> str:
    """``text``, cut to :data:`TAG_LIMIT` characters (ending in ``...``) when longer."""
    return text if len(text) <= TAG_LIMIT else text[: TAG_LIMIT - 3] + "..."


def warm(
    classifier: ConnectClassifier | ConnectCurveModel, example: Floats, *, what: str = "model"
) -> None:
    """Score ``example`` once; :class:`ModelLoadError` unless that gives finite probabilities."""
    try:
        probability = classifier.predict_proba(example)
    except Exception as e:
        raise ModelLoadError(f"{what} fails on its own input example: {e}") from e
    if probability.shape != (len(example),) or not np.all(
        np.isfinite(probability) & (probability >= 0) & (probability <= 1)
    ):
        raise ModelLoadError(f"{what} gives no valid probabilities for its input example")
