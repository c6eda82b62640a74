"""``serve``'s wiring of the leader lease (``PROVISIONER_LEADER_LEASE_S``): two replicas
built by ``running_service`` on one Redis, their app lifespans run in one event loop."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from provisioner.service_wiring import running_service
from provisioner.settings import Settings
from service.lease import FencedProvider


@pytest.mark.integration
def test_replicas_take_turns_at_the_lease(
    redis_url: str, key_prefix: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def settings(instance: str, bridge: bool) -> Settings:
        return Settings(
            home=tmp_path,
            key_prefix=key_prefix,
            channel_prefix=key_prefix,
            instance=instance,
            leader_lease_s=0.6,
            bridge=bridge,
            model_check_s=3600.0,
        )

    async def scenario() -> None:
        async with (
            running_service(settings("a", True), redis_url) as a,
            running_service(settings("b", False), redis_url) as b,
        ):
            assert isinstance(a.service.provider, FencedProvider)
            async with a.app.router.lifespan_context(a.app):
                assert a.service.is_leader()  # a lone replica leads from its start
                async with b.app.router.lifespan_context(b.app):
                    assert not b.service.is_leader()
                # b stopped: a still leads; then a stops and releases, b is gone: nobody.
                assert a.service.is_leader()
            assert not a.service.is_leader()
            async with b.app.router.lifespan_context(b.app):
                assert b.service.is_leader()  # a released the lease at its shutdown

    asyncio.run(scenario())
    assert any("events are logged twice" in r.getMessage() for r in caplog.records)
