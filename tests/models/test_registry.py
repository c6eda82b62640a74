from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest

from models.classifier import ConnectClassifier, Floats, SigmoidCalibration
from models.registry import (
    CHAMPION,
    PREVIOUS,
    TAG_LIMIT,
    ModelLoadError,
    ModelNotFound,
    ModelRegistry,
    RegistryBusy,
    RegistryUnavailable,
    warm,
)
from tests.lifecycle import BOTH_STORES, register, trained
from tests.servers import free_port
from training.tracking import TrackingConfig


def artifacts(registry: ModelRegistry, version: str) -> Path:
    uri = registry.client.get_model_version_download_uri(registry.model_name, version)
    return Path(urlparse(uri).path)


@BOTH_STORES
@pytest.mark.slow
def test_an_alias_resolves_once_to_the_exact_version(
    registry: ModelRegistry, tracking: TrackingConfig
) -> None:
    register(tracking)
    register(tracking)
    registry.set_alias(CHAMPION, "1")
    loaded = registry.load_alias()
    registry.set_alias(CHAMPION, "2")  # the alias moves; what was loaded does not
    assert (loaded.version, loaded.alias, loaded.name) == ("1", CHAMPION, registry.model_name)
    assert registry.resolve() == "2" and registry.load_alias().version == "2"
    assert loaded.run_id and loaded.horizon_s == 40.0
    assert loaded.loaded_at == pytest.approx(time.time(), abs=60) and loaded.load_seconds > 0
    assert registry.aliases() == {CHAMPION: "2"} and registry.latest_version() == "2"


@BOTH_STORES
def test_aliases_and_tags_are_written_through_the_registry(
    registry: ModelRegistry, tracking: TrackingConfig
) -> None:
    register(tracking)
    register(tracking)
    registry.set_alias(CHAMPION, "2")
    registry.set_alias(PREVIOUS, "1")
    assert registry.aliases() == {CHAMPION: "2", PREVIOUS: "1"}
    registry.delete_alias(PREVIOUS)
    assert registry.aliases() == {CHAMPION: "2"}
    registry.tag_version("2", {"promotion.by": "ci", "promotion.why": "x" * (TAG_LIMIT + 10)})
    tags = registry.version_info("2").tags
    assert tags["promotion.by"] == "ci"
    assert len(tags["promotion.why"]) == TAG_LIMIT and tags["promotion.why"].endswith("...")
    registry.tag_model("audit.last", "{}")
    model = registry.client.get_registered_model(registry.model_name)
    assert model.tags["audit.last"] == "{}"


@pytest.mark.slow
def test_a_loaded_version_is_warm_and_predicts_as_trained(
    registry: ModelRegistry, tracking: TrackingConfig
) -> None:
    register(tracking)
    loaded = registry.load("1")
    assert loaded.input_example.shape == (5, 23)
    assert loaded.alias is None
    test = trained().split.test
    np.testing.assert_allclose(loaded.predict_proba(test.X), trained().test_probability["model"])


@pytest.mark.slow
def test_missing_things_are_model_not_found(
    registry: ModelRegistry, tracking: TrackingConfig
) -> None:
    assert registry.aliases() == {} and registry.latest_version() is None
    with pytest.raises(ModelNotFound, match="no version with alias"):
        registry.load_alias()
    register(tracking)
    with pytest.raises(ModelNotFound, match="alias 'champion'"):
        registry.resolve()
    with pytest.raises(ModelNotFound, match="no version 7"):
        registry.load("7")


@pytest.mark.slow
def test_broken_artifacts_are_load_errors(
    registry: ModelRegistry, tracking: TrackingConfig
) -> None:
    register(tracking)
    register(tracking)
    (artifacts(registry, "1") / "model.lgb").write_text("tree\nnot a booster\n")
    with pytest.raises(ModelLoadError, match=r"models:/.*/1") as caught:
        registry.load("1")
    assert caught.value.__cause__ is not None
    (artifacts(registry, "2") / "extra_files" / "classifier.json").unlink()
    with pytest.raises(ModelLoadError, match=r"classifier\.json"):
        registry.load("2")


@BOTH_STORES
def test_one_writer_at_a_time_and_a_dead_writer_s_lock_is_broken(
    registry: ModelRegistry, tracking: TrackingConfig
) -> None:
    other = ModelRegistry(tracking.tracking_uri, tracking.model_name)  # another process's
    with registry.writing() as holder:
        with registry.writing() as again:  # reentrant in one thread
            assert again == holder
        lock = registry.client.get_registered_model(registry.lock_name)
        assert lock.tags["holder"] == holder
        started = time.perf_counter()
        with pytest.raises(RegistryBusy, match="held by"), other.writing(wait_s=0.3):
            pass
        assert time.perf_counter() - started >= 0.3
    with other.writing():  # released
        pass
    assert not registry.client.search_registered_models(f"name='{registry.lock_name}'")
    with pytest.raises(RuntimeError), registry.writing():  # released on an error too
        raise RuntimeError("boom")
    dead = {"holder": "gone:1:x", "expires": str(time.time() - 1)}
    registry.client.create_registered_model(registry.lock_name, tags=dead)
    with other.writing(wait_s=0.5) as holder:  # its lease is over: broken
        assert holder != "gone:1:x"
    assert registry.aliases() == {}  # the model itself is untouched


class NaNBooster:
    """A booster stand-in that answers NaN: no real booster can be made to do so."""

    def predict(self, features: Floats, **params: object) -> Floats:
        return np.full(len(features), np.nan)


def test_warming_refuses_a_model_that_cannot_score_its_example() -> None:
    good = trained().classifier
    example = trained().split.test.X[:5]
    warm(good, example)
    broken = dataclasses.replace(good, booster=NaNBooster())
    with pytest.raises(ModelLoadError, match="no valid probabilities"):
        warm(broken, example)
    narrow = ConnectClassifier(good.booster, SigmoidCalibration(1, 0), 40.0)
    with pytest.raises(ModelLoadError, match="fails on its own input example"):
        warm(narrow, example[:, :5])


def test_an_unreachable_store_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    registry = ModelRegistry(f"http://127.0.0.1:{free_port()}", "anything")
    started = time.perf_counter()
    with pytest.raises(RegistryUnavailable) as caught:
        registry.load_alias()
    assert time.perf_counter() - started < 10
    assert caught.value.__cause__ is not None
