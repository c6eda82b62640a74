"""Schemathesis against the service's own OpenAPI schema, over a real socket and real Redis.

Every operation is called with generated requests, valid ones (``positive``) and ones
that break the schema (``negative``), with and without the admin token. Schemathesis'
default checks apply to every answer: no 5xx, status codes, content types, headers and
bodies that the schema documents, schema-valid requests accepted and invalid ones
refused. CI-sized: a few dozen examples per operation and mode.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import redis
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.core.result import Ok
from schemathesis.generation.case import Case

from features.clock import ScaledClock
from features.eventlog import EventLog, LogKeys
from features.events import UserActivity, UserConnect
from service.app import create_app
from simulation.nodes.boot import UniformBoot
from simulation.nodes.fleet import NodeFleet
from tests.servers import serve
from tests.service.live_harness import SPEED, bridged, make_service

TOKEN = "schema-token"
EXAMPLES = 25
# A body over the size limit is refused with 413 before it is parsed: a fine refusal of
# schema-violating data (e.g. more user ids than allowed, each long).
REFUSALS = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"]
CONFIG = schemathesis.Config.from_dict(
    {"checks": {"negative_data_rejection": {"expected-statuses": REFUSALS}}}
)


@pytest.fixture
def base_url(redis_url: str, redis_client: redis.Redis, key_prefix: str) -> Iterator[str]:
    clock = ScaledClock(anchor=time.time(), speed=SPEED)
    fleet = NodeFleet(UniformBoot(10, 29), random.Random(7))
    harness = make_service(redis_url, key_prefix, clock, fleet)
    log = EventLog(redis_client, LogKeys(key_prefix))
    app = create_app(harness.service, admin_token=TOKEN, on_shutdown=[harness.close])
    with bridged(redis_client, log, key_prefix), serve(app) as url:
        deadline = time.monotonic() + 10
        while httpx.get(f"{url}/readyz").status_code != 200:
            assert time.monotonic() < deadline, "never ready"
            time.sleep(0.05)
        now = clock.now()  # some users, so that known and unknown ones are both asked about
        log.append_batch([UserActivity(now, "ann", int(now)), UserConnect(now + 0.01, "ann")])
        yield url


@pytest.mark.slow
def test_every_operation_conforms_to_the_schema(base_url: str) -> None:
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json", config=CONFIG)
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # the schema itself is valid
        operations.append(result.ok())
    assert {op.label for op in operations} >= {"POST /v1/predict", "POST /v1/model/reload"}
    for operation in operations:
        inputs = [*operation.iter_parameters(), *operation.body]
        modes = [GenerationMode.POSITIVE] + ([GenerationMode.NEGATIVE] if inputs else [])
        for mode in modes:
            strategy = operation.as_strategy(generation_mode=mode)
            run = _runner(strategy, base_url)
            run()


def test_every_json_answer_has_a_model(base_url: str) -> None:
    """Each route's JSON answers are described by a named model: none is a bare object."""
    paths = httpx.get(f"{base_url}/openapi.json").json()["paths"]
    untyped = []
    for path, operations in paths.items():
        for method, operation in operations.items():
            for status, answer in operation["responses"].items():
                schema = answer.get("content", {}).get("application/json", {}).get("schema")
                if schema is not None and not _named(schema):
                    untyped.append(f"{method.upper()} {path} {status}: {schema}")
    assert not untyped, untyped


def _named(schema: dict[str, Any]) -> bool:
    if "$ref" in schema:
        return True
    if "items" in schema:
        return _named(schema["items"])
    return "anyOf" in schema and all(_named(option) for option in schema["anyOf"])


def _runner(strategy: st.SearchStrategy[Case[Any]], base_url: str) -> Callable[[], None]:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy, admin=st.booleans())
    def run(case: Case[Any], admin: bool) -> None:
        headers = {"Authorization": f"Bearer {TOKEN}"} if admin else None
        case.call_and_validate(base_url=base_url, headers=headers)

    return run
