"""Promotion and rollback: the ``champion`` alias moved through the gates, and the audit trail.

A candidate version and the current ``champion`` are scored on the same holdout: the test
slice of a dataset freshly built, with the candidate's own dataset spec and split, from the
most recent events, and judged by the gates of :mod:`training.gates`. Either may be of
either model type (``models.model_types``): each is scored on its probability at the
horizon (a curve's last point), and two curves also on the integrated Brier score of their
curves at the candidate's horizons (:attr:`PromotionDecision.curves`).

With no champion yet, or one that cannot be loaded or was trained on other features, the
reference is the heuristic (the scorer the service would fall back to) with no tolerance:
the first model must beat it.

Promotion moves ``champion`` to the candidate and ``previous`` to the old champion (and
removes ``challenger`` when it named the candidate); rollback moves ``champion`` back to
``previous`` (and ``previous`` to the version that was champion before that one, when
known). Every decision leaves tags on the versions
(``promotion.*``, ``demotion.*``, ``rollback.*``: who, when, why, from which version) and
the last action on the registered model (``audit.last``), written through
:class:`models.registry.ModelRegistry`.

The ``challenger`` alias names a version the live service scores in the shadow of the
champion (:func:`set_challenger`; ``retrain`` sets it to a new version the gates kept out).
:func:`promote` with a :class:`training.live_gates.LiveRule` also weighs the live evidence
of the candidate (the challenger) against the champion's at their latest common step
(``training.live_gates``), on top of the holdout gates, and records it
(``promotion.live``).

Each of :func:`promote`, :func:`rollback` and :func:`set_challenger` reads the aliases,
decides and writes while holding the registered model's writer lock
(:meth:`models.registry.ModelRegistry.writing`): two writers at once, in processes or hosts
of their own, apply their decisions one after the other, each against the aliases the other
left. :func:`apply` on its own checks that the champion is still the one the decision was
made against (:class:`ChampionMoved` otherwise).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from features.table import EventTable
from models.heuristic import HeuristicScorer
from models.registry import (
    CHALLENGER,
    CHAMPION,
    PREVIOUS,
    LoadedModel,
    ModelNotFound,
    ModelRegistry,
    RegistryBusy,
    RegistryError,
)
from training.curve import measure_on
from training.dataset import Dataset, DatasetSpec, build_dataset
from training.evaluate import ModelMetrics, evaluate
from training.gates import (
    DEFAULT_TOLERANCES,
    STRICT,
    PromotionDecision,
    Tolerances,
    check_curve_gate,
    check_gates,
)
from training.live_gates import LiveRule, check_live_gates, describe_live_gate
from training.train import SPLIT

HEURISTIC: Final = "heuristic"


class PromotionError(Exception):
    """Promotion or rollback could not be carried out."""


class NoCandidate(PromotionError):
    """No version to promote."""


class BadHoldout(PromotionError):
    """The holdout cannot tell models apart (empty, or a single class)."""


class NothingToRollBack(PromotionError):
    """No ``previous`` version to go back to."""


class NoLiveEvidence(PromotionError):
    """No live evidence to compare the challenger and the champion on."""


class ChampionMoved(PromotionError):
    """The champion is no longer the one the decision was made against: decide again."""


@dataclass(frozen=True)
class Rollback:
    from_version: str
    to_version: str
    previous: str | None
    """What ``previous`` names afterwards (None: removed)."""
    actor: str
    at: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"action": "rollback", **asdict(self)}


# -- candidates and holdouts -------------------------------------------------------------------


def load_candidate(registry: ModelRegistry, version: str | None = None) -> LoadedModel:
    """The version to promote (default: the newest), loaded and warmed."""
    chosen = version if version is not None else registry.latest_version()
    if chosen is None:
        raise NoCandidate(f"{registry.model_name!r} has no registered version: train one first")
    try:
        return registry.load(chosen)
    except ModelNotFound as e:
        raise NoCandidate(str(e)) from e


def load_challenger(registry: ModelRegistry) -> LoadedModel:
    """The ``challenger`` version, loaded and warmed; :class:`NoCandidate` without one."""
    version = registry.alias_version(CHALLENGER)
    if version is None:
        raise NoCandidate(
            f"{registry.model_name!r} has no {CHALLENGER!r}: set one with "
            "`promote --challenger VERSION` (retrain sets it when the gates keep the champion)"
        )
    return registry.load(version, alias=CHALLENGER)


def set_challenger(
    registry: ModelRegistry,
    version: str,
    *,
    actor: str,
    now: float | None = None,
    note: str | None = None,
) -> dict[str, Any]:
    """Point ``challenger`` at ``version`` after checking it loads (and is not the
    champion); tagged ``challenger.at/by/why`` and recorded in ``audit.last``."""
    try:
        registry.load(version)
    except ModelNotFound as e:
        raise NoCandidate(str(e)) from e
    try:
        with registry.writing():
            return _set_challenger(registry, version, actor=actor, now=now, note=note)
    except RegistryBusy as e:
        raise PromotionError(str(e)) from e


def _set_challenger(
    registry: ModelRegistry, version: str, *, actor: str, now: float | None, note: str | None
) -> dict[str, Any]:
    aliases = registry.aliases()
    if aliases.get(CHAMPION) == version:
        raise PromotionError(f"version {version} is the champion: it cannot be the challenger")
    at = _iso(time.time() if now is None else now)
    before = aliases.get(CHALLENGER)
    why = note or f"challenger: version {version}" + (f" (was {before})" if before else "")
    try:
        registry.set_alias(CHALLENGER, version)
        registry.tag_version(version, _audit_tags("challenger", at, actor, why))
        _record_last(registry, "challenger", version, before or "none", actor, at, why)
    except Exception as e:
        raise PromotionError(f"could not set the challenger in {registry!r}: {e}") from e
    return {
        "action": "challenger",
        "version": version,
        "previous_challenger": before,
        "champion": aliases.get(CHAMPION),
        "actor": actor,
        "at": at,
        "why": why,
    }


def holdout_spec(model: LoadedModel) -> tuple[DatasetSpec, tuple[float, float, float]]:
    """The dataset spec and split a model was trained with (defaults where not recorded)."""
    data = dict(model.classifier.data)
    default = DatasetSpec(horizon_s=model.horizon_s)
    spec = DatasetSpec(
        horizon_s=float(data.get("horizon_s", default.horizon_s)),
        every_s=float(data.get("every_s", default.every_s)),
        quiet_after_s=float(data.get("quiet_after_s", default.quiet_after_s)),
        quiet_stride=int(data.get("quiet_stride", default.quiet_stride)),
    )
    raw = data.get("split", SPLIT)
    split = (float(raw[0]), float(raw[1]), float(raw[2])) if len(raw) == 3 else SPLIT
    return spec, split


def build_holdout(
    table: EventTable,
    model: LoadedModel,
    *,
    rows_since: float | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Dataset:
    """The test slice of the dataset built from ``table`` as ``model`` was trained (rows
    from ``rows_since`` on: the events before are a warm-up)."""
    spec, split = holdout_spec(model)
    dataset = build_dataset(table, spec, rows_since=rows_since, progress=progress)
    if not len(dataset):
        raise BadHoldout("no holdout rows: the range holds no user events, or too few")
    return dataset.split(split).test


def check_holdout(holdout: Dataset) -> None:
    if not len(holdout):
        raise BadHoldout("the holdout is empty: use a longer range of recent events")
    if holdout.positives == 0 or holdout.positives == len(holdout):
        raise BadHoldout(
            f"the holdout's {len(holdout)} rows hold {holdout.positives} connects: "
            "gates need both classes; use a longer range of recent events"
        )


def describe_holdout(holdout: Dataset) -> dict[str, Any]:
    return {
        "rows": len(holdout),
        "positives": holdout.positives,
        "first_cutoff": _iso(float(holdout.t_ms[0]) / 1000) if len(holdout) else None,
        "last_cutoff": _iso(float(holdout.t_ms[-1]) / 1000) if len(holdout) else None,
        "horizon_s": holdout.spec.horizon_s,
        "digest": holdout.digest()[:16],
    }


# -- deciding and applying ---------------------------------------------------------------------


def decide_promotion(
    registry: ModelRegistry,
    candidate: LoadedModel,
    holdout: Dataset,
    tolerances: Tolerances = DEFAULT_TOLERANCES,
) -> PromotionDecision:
    """Score the candidate and the reference on ``holdout`` and apply the gates."""
    check_holdout(holdout)
    champion_version = registry.alias_version(CHAMPION)
    summary = describe_holdout(holdout)
    if champion_version == candidate.version:
        return PromotionDecision(
            promote=False,
            candidate=candidate.version,
            reference=f"version {champion_version}",
            champion=champion_version,
            gates=(),
            reasons=(f"version {candidate.version} is already the champion",),
            candidate_metrics=None,
            reference_metrics=None,
            holdout=summary,
        )
    candidate_metrics = _score(candidate, holdout)
    notes: list[str] = []
    champion = _champion(registry, champion_version, candidate, holdout, notes)
    if champion is not None:
        reference_name = f"version {champion.version}"
        reference_probability = champion.probability
    else:
        reference_name = HEURISTIC
        reference_probability = (
            HeuristicScorer(horizon_s=candidate.horizon_s).score(holdout.X).probability
        )
        if champion_version is None:
            notes.append("no champion yet: the candidate must beat the heuristic")
        else:
            notes.append("compared with the heuristic instead")
    reference_metrics = evaluate(holdout.y, reference_probability, holdout.w)
    chosen = STRICT if champion is None else tolerances
    gates = check_gates(candidate_metrics, reference_metrics, chosen)
    curves = None
    if champion is not None:
        notes.extend(_types_note(candidate, champion.model))
        curves = _curves(candidate, champion.model, holdout)
        if curves is not None:
            gates = (*gates, check_curve_gate(curves["candidate"], curves["reference"], chosen))
    passed = all(g.passed for g in gates)
    reasons = [
        *notes,
        *(g.describe(reference_name) for g in gates),
        f"{'promote' if passed else 'reject'} version {candidate.version}",
    ]
    return PromotionDecision(
        promote=passed,
        candidate=candidate.version,
        reference=reference_name,
        champion=champion_version,
        gates=gates,
        reasons=tuple(reasons),
        candidate_metrics=candidate_metrics,
        reference_metrics=reference_metrics,
        holdout=summary,
        curves=curves,
    )


@dataclass(frozen=True)
class _Champion:
    """The champion as a reference: loaded, and its probabilities on the holdout."""

    model: LoadedModel
    probability: npt.NDArray[np.float64]

    @property
    def version(self) -> str:
        return self.model.version


def _champion(
    registry: ModelRegistry,
    version: str | None,
    candidate: LoadedModel,
    holdout: Dataset,
    notes: list[str],
) -> _Champion | None:
    """The champion scored on ``holdout``; None (and why, in ``notes``) when there is none
    or it cannot be the reference: not loaded, other features, fails on the holdout."""
    if version is None:
        return None
    try:
        champion = registry.load(version, alias=CHAMPION)
    except RegistryError as e:
        notes.append(f"champion version {version} could not be loaded ({e})")
        return None
    if champion.feature_names != holdout.feature_names:
        notes.append(f"champion version {version} uses other features")
        return None
    probability = _predict(champion, holdout)
    if probability is None:
        notes.append(f"champion version {version} fails on the holdout")
        return None
    if champion.horizon_s != candidate.horizon_s:
        notes.append(
            f"champion's horizon is {champion.horizon_s} s, the candidate's "
            f"{candidate.horizon_s} s: both scored on the candidate's labels"
        )
    return _Champion(champion, probability)


def _types_note(candidate: LoadedModel, champion: LoadedModel) -> list[str]:
    """What the candidate and the champion are judged on, when they are of two types."""
    if candidate.model_type is champion.model_type:
        return []
    return [
        f"version {candidate.version} is a {candidate.model_type}, version {champion.version} "
        f"a {champion.model_type}: judged on their probabilities at the horizon"
    ]


def _curves(
    candidate: LoadedModel, champion: LoadedModel, holdout: Dataset
) -> dict[str, Any] | None:
    """Both curves' metrics on the holdout at the candidate's horizons, when both are
    curves (the champion's read there when its grid differs); None otherwise."""
    mine, theirs = candidate.curve_model, champion.curve_model
    if mine is None or theirs is None:
        return None
    return {
        "horizons_s": list(mine.grid.horizons_s),
        "candidate": measure_on(mine, holdout, mine.grid),
        "reference": measure_on(theirs, holdout, mine.grid),
    }


def apply(
    registry: ModelRegistry,
    decision: PromotionDecision,
    *,
    actor: str,
    now: float | None = None,
    note: str | None = None,
) -> PromotionDecision:
    """Carry out ``decision``: move the aliases when promoted, tag the versions either way."""
    at = _iso(time.time() if now is None else now)
    why = "; ".join(decision.reasons)
    if note:
        why = f"{note} | {why}"
    source = decision.champion or HEURISTIC
    try:
        with registry.writing():
            _apply(registry, decision, actor=actor, at=at, why=why, note=note, source=source)
    except ChampionMoved:
        raise
    except Exception as e:
        raise PromotionError(f"could not record the decision in {registry!r}: {e}") from e
    return replace(decision, applied=True, actor=actor, at=at)


def _apply(
    registry: ModelRegistry,
    decision: PromotionDecision,
    *,
    actor: str,
    at: str,
    why: str,
    note: str | None,
    source: str,
) -> None:
    """The writes of :func:`apply`, under the writer lock."""
    champion = registry.alias_version(CHAMPION)
    if champion != decision.champion:
        raise ChampionMoved(
            f"the champion is version {champion} now, not {decision.champion} as when "
            f"version {decision.candidate} was judged: decide again"
        )
    if decision.promote:
        if decision.champion is not None:
            registry.set_alias(PREVIOUS, decision.champion)
            registry.tag_version(
                decision.champion,
                _audit_tags("demotion", at, actor, why, {"to": decision.candidate}),
            )
        registry.set_alias(CHAMPION, decision.candidate)
        if registry.alias_version(CHALLENGER) == decision.candidate:
            registry.delete_alias(CHALLENGER)
    tags = {
        "decision": "promoted" if decision.promote else "rejected",
        "from": source,
        "reference": decision.reference,
        "holdout": json.dumps(decision.holdout, sort_keys=True),
    }
    if note:
        tags["note"] = note
    if decision.live is not None:
        tags["live"] = json.dumps(decision.live, sort_keys=True)
    registry.tag_version(decision.candidate, _audit_tags("promotion", at, actor, why, tags))
    _record_last(
        registry,
        "promote" if decision.promote else "reject",
        decision.candidate,
        source,
        actor,
        at,
        why,
    )


def promote(
    registry: ModelRegistry,
    candidate: LoadedModel,
    holdout: Dataset,
    *,
    tolerances: Tolerances = DEFAULT_TOLERANCES,
    actor: str,
    now: float | None = None,
    dry_run: bool = False,
    note: str | None = None,
    live: LiveRule | None = None,
) -> PromotionDecision:
    """:func:`decide_promotion` (and :func:`with_live_gates` when a ``live`` rule is
    given), then :func:`apply` unless ``dry_run``; decided and applied under the writer
    lock (a dry run takes none)."""
    if dry_run:
        return _promote(registry, candidate, holdout, tolerances, actor, now, True, note, live)
    try:
        with registry.writing():
            return _promote(registry, candidate, holdout, tolerances, actor, now, False, note, live)
    except RegistryBusy as e:
        raise PromotionError(str(e)) from e


def _promote(
    registry: ModelRegistry,
    candidate: LoadedModel,
    holdout: Dataset,
    tolerances: Tolerances,
    actor: str,
    now: float | None,
    dry_run: bool,
    note: str | None,
    live: LiveRule | None,
) -> PromotionDecision:
    decision = decide_promotion(registry, candidate, holdout, tolerances)
    if live is not None:
        decision = with_live_gates(
            registry, decision, live, now=time.time() if now is None else now
        )
    if dry_run:
        return replace(decision, dry_run=True, actor=actor)
    if not decision.gates:  # already the champion: nothing to record
        return replace(decision, actor=actor)
    return apply(registry, decision, actor=actor, now=now, note=note)


def with_live_gates(
    registry: ModelRegistry, decision: PromotionDecision, rule: LiveRule, *, now: float
) -> PromotionDecision:
    """``decision`` with the live gates (``training.live_gates``) of its candidate against
    the champion at their latest common step; :class:`NoLiveEvidence` when there is none."""
    if not decision.gates:  # already the champion
        return decision
    champion = decision.champion
    if champion is None:
        raise NoLiveEvidence("no champion to compare the challenger's live evidence with")
    pair = registry.common_live_evidence(champion, decision.candidate)
    if pair is None:
        raise NoLiveEvidence(
            f"versions {champion} and {decision.candidate} have no live evidence logged at "
            "a common step: the service logs it while it scores both (champion and challenger)"
        )
    champion_evidence, challenger_evidence = pair
    gates = check_live_gates(champion_evidence, challenger_evidence, rule, now=now)
    passed = decision.promote and all(g.passed for g in gates)
    reasons = [
        *decision.reasons[:-1],
        *(describe_live_gate(g, champion) for g in gates),
        f"{'promote' if passed else 'reject'} version {decision.candidate}",
    ]
    live = {
        "step": champion_evidence.step,
        "at": _iso(champion_evidence.at),
        "age_s": round(now - champion_evidence.at, 3),
        "rule": asdict(rule),
        "champion": dict(champion_evidence.metrics),
        "challenger": dict(challenger_evidence.metrics),
    }
    return replace(
        decision,
        promote=passed,
        gates=(*decision.gates, *gates),
        reasons=tuple(reasons),
        live=live,
    )


def rollback(
    registry: ModelRegistry,
    *,
    actor: str,
    now: float | None = None,
    note: str | None = None,
) -> Rollback:
    """Move ``champion`` back to ``previous`` after checking that version loads; read and
    written under the writer lock."""
    try:
        with registry.writing():
            return _rollback(registry, actor=actor, now=now, note=note)
    except RegistryBusy as e:
        raise PromotionError(str(e)) from e


def _rollback(
    registry: ModelRegistry, *, actor: str, now: float | None, note: str | None
) -> Rollback:
    aliases = registry.aliases()
    champion, previous = aliases.get(CHAMPION), aliases.get(PREVIOUS)
    if previous is None or champion is None:
        raise NothingToRollBack(
            f"{registry.model_name!r} has no {PREVIOUS!r} version to roll back to"
        )
    registry.load(previous)  # a rollback onto a model that cannot load would be no rollback
    before = str(registry.version_info(previous).tags.get("promotion.from", ""))
    new_previous = before if before.isdigit() and before not in (previous, champion) else None
    if new_previous is not None:
        try:
            registry.version_info(new_previous)
        except ModelNotFound:
            new_previous = None
    at = _iso(time.time() if now is None else now)
    reason = note or f"rollback from version {champion} to version {previous}"
    try:
        registry.set_alias(CHAMPION, previous)
        if new_previous is not None:
            registry.set_alias(PREVIOUS, new_previous)
        else:
            registry.delete_alias(PREVIOUS)
        registry.tag_version(
            previous, _audit_tags("rollback", at, actor, reason, {"from": champion})
        )
        registry.tag_version(
            champion, _audit_tags("rolled_back", at, actor, reason, {"to": previous})
        )
        _record_last(registry, "rollback", previous, champion, actor, at, reason)
    except Exception as e:
        raise PromotionError(f"rollback in {registry!r} failed: {e}") from e
    return Rollback(champion, previous, new_previous, actor, at, reason)


def _score(model: LoadedModel, holdout: Dataset) -> ModelMetrics:
    probability = _predict(model, holdout)
    if probability is None:
        raise PromotionError(f"version {model.version} gives no valid probabilities")
    return evaluate(holdout.y, probability, holdout.w)


def _predict(model: LoadedModel, holdout: Dataset) -> npt.NDArray[np.float64] | None:
    """The model's probabilities on the holdout; None if it raises or gives non-probabilities."""
    try:
        probability = np.asarray(model.predict_proba(holdout.X), dtype=np.float64)
    except Exception:
        return None
    valid = probability.shape == (len(holdout),) and bool(
        np.all(np.isfinite(probability) & (probability >= 0) & (probability <= 1))
    )
    return probability if valid else None


def _record_last(
    registry: ModelRegistry, action: str, version: str, source: str, actor: str, at: str, why: str
) -> None:
    """The registered model's ``audit.last`` tag: the last action, as JSON."""
    last = {"action": action, "version": version, "from": source, "by": actor, "at": at, "why": why}
    registry.tag_model("audit.last", json.dumps(last))


def _audit_tags(
    prefix: str, at: str, actor: str, why: str, extra: dict[str, str] | None = None
) -> dict[str, str]:
    """``{prefix}.at``, ``.by``, ``.why`` and ``extra``'s keys under ``prefix``."""
    values = {"at": at, "by": actor, "why": why, **(extra or {})}
    return {f"{prefix}.{key}": value for key, value in values.items()}


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
