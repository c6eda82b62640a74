"""Giving the memory the process freed back to the system.

A long-running Python service with numpy and LightGBM frees native buffers of every size
at every tick. glibc keeps freed memory in its arenas for reuse and returns it to the
system only from the top of a heap, so resident memory can creep up with uptime while the
Python heap stays flat (the long soak, docs/deploy.md). ``malloc_trim(0)`` returns every
free page of every arena. :func:`release_free_memory` calls it where the C library is glibc
and does nothing elsewhere (musl, macOS): the live shell calls it now and then.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    function: Callable[[int], int] = trim
    return function


def can_release_free_memory() -> bool:
    """Whether this process's C library can give free memory back (glibc's ``malloc_trim``)."""
    return _malloc_trim() is not None


def release_free_memory() -> bool:
    """Give every free page of the C allocator back to the system; True when some memory was
    released, False when none was or the C library cannot (see
    :func:`can_release_free_memory`). Takes the allocator's locks: call it off the event
    loop."""
    trim = _malloc_trim()
    return trim is not None and trim(0) == 1
