"""Where a job trains beyond this process: a Dask scheduler, or a cluster started here.

An address is ``tcp://HOST:PORT`` (a running scheduler, whose workers have this package
installed) or ``local:N`` (a ``distributed.LocalCluster`` of N single-threaded worker
processes on this machine, started for the job and closed at its end). :func:`dask_client`
connects, waits for a worker, and closes what it opened. Dask is imported there, not at
import time: the single-machine path never loads it.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from training.defaults import DEFAULT_DASK_TIMEOUT_S

if TYPE_CHECKING:
    from distributed import Client

LOCAL_PREFIX: Final = "local:"
SCHEDULER_FORM: Final = re.compile(r"tcp://[^\s/:]+:\d{1,5}")
FORMS: Final = "tcp://HOST:PORT (a Dask scheduler) or local:N (N local workers, N >= 1)"


class DaskError(ValueError):
    """Training on Dask cannot start: nothing is trained or registered."""


class BadDaskAddress(DaskError):
    """The address is neither form."""


class DaskUnavailable(DaskError):
    """The scheduler does not answer, or has no worker, within the timeout."""


@dataclass(frozen=True, slots=True)
class DaskAddress:
    """A parsed address: a scheduler's, or a count of local workers."""

    scheduler: str | None = None
    local_workers: int | None = None

    @classmethod
    def parse(cls, text: str) -> DaskAddress:
        """``tcp://HOST:PORT`` or ``local:N`` (:class:`BadDaskAddress` saying which forms)."""
        text = text.strip()
        if text.startswith(LOCAL_PREFIX):
            count = text.removeprefix(LOCAL_PREFIX)
            if not count.isdigit() or int(count) < 1:
                raise BadDaskAddress(f"{text!r}: N of local:N must be a whole number >= 1")
            return cls(local_workers=int(count))
        if not SCHEDULER_FORM.fullmatch(text):
            raise BadDaskAddress(f"{text!r} is not a Dask address: use {FORMS}")
        return cls(scheduler=text)

    def __str__(self) -> str:
        return self.scheduler or f"{LOCAL_PREFIX}{self.local_workers}"


@contextmanager
def dask_client(
    address: DaskAddress, *, timeout_s: float = DEFAULT_DASK_TIMEOUT_S
) -> Iterator[Client]:
    """A client of ``address`` with at least one worker; a local cluster is closed after."""
    from distributed import Client, LocalCluster

    if address.local_workers is not None:
        with stdout_to_stderr():  # the workers' processes inherit it
            cluster = LocalCluster(
                n_workers=address.local_workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
            )
        with cluster, Client(cluster) as client:
            yield client
        return
    try:
        client = Client(address.scheduler, timeout=timeout_s)
    except (OSError, TimeoutError) as e:
        raise DaskUnavailable(
            f"no Dask scheduler answered at {address} within {timeout_s:g} s: {e}"
        ) from e
    with client:
        try:
            client.wait_for_workers(1, timeout=timeout_s)
        except (OSError, TimeoutError) as e:
            raise DaskUnavailable(
                f"the Dask scheduler at {address} has no worker after {timeout_s:g} s"
            ) from e
        yield client


@contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """This process's standard output file goes to its standard error meanwhile (what
    LightGBM prints on the workers must not mix with a command's JSON line on stdout)."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def worker_count(client: Client) -> int:
    """The workers the scheduler has now."""
    return len(client.nthreads())
