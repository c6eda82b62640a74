"""The seed-compatible node API: a pure fleet model and its HTTP shell.

The pure part (``boot``, ``fleet``, ``usertime``, ``efficiency``) takes ``now`` from its
caller and is shared by the HTTP shell (``live``, ``userfeed``, ``api``), the virtual-time
bench and the in-process simulated node provider.
"""

from simulation.nodes.boot import (
    DEFAULT_BOOT_SPEC,
    BootChange,
    BootSchedule,
    BootTime,
    FixedBoot,
    NormalBoot,
    UniformBoot,
    parse_boot_schedule,
    parse_boot_time,
)
from simulation.nodes.efficiency import efficiency_report
from simulation.nodes.fleet import Node, NodeFleet, Termination, Transition
from simulation.nodes.usertime import UserTime

__all__ = [
    "DEFAULT_BOOT_SPEC",
    "BootChange",
    "BootSchedule",
    "BootTime",
    "FixedBoot",
    "Node",
    "NodeFleet",
    "NormalBoot",
    "Termination",
    "Transition",
    "UniformBoot",
    "UserTime",
    "efficiency_report",
    "parse_boot_schedule",
    "parse_boot_time",
]
