"""Which partition a user belongs to: one stable function of the user id.

The partitioned export (``features.partitioned``) puts every event of a user in partition
``user_partition(user_id, partitions)``; whatever later works on users partition by
partition (a Dask worker building a dataset) calls this same function, so one user is
always in one place. It is the CRC-32 of the id's UTF-8 bytes modulo the partition count:
the same on every machine, process and Python version, unlike the built-in ``hash``,
which is salted per process.
"""

from __future__ import annotations

import zlib
from typing import Final

PARTITION_FUNCTION: Final = "crc32"
"""The name of :func:`user_partition`'s function, as an export's manifest records it."""


def user_partition(user_id: str, partitions: int) -> int:
    """The partition, ``0 .. partitions - 1``, of the events of ``user_id``."""
    if partitions < 1:
        raise ValueError(f"partitions must be 1 or more, not {partitions}")
    return zlib.crc32(user_id.encode("utf-8")) % partitions
