"""Enumerations and constants of msgr.h."""

from __future__ import annotations

import enum

from . import _lib


class EntityType(enum.IntEnum):
    """Ceph's CEPH_ENTITY_TYPE_* (MSGR_ENTITY_*)."""

    MON = 0x01
    MDS = 0x02
    OSD = 0x04
    CLIENT = 0x08
    MGR = 0x10
    AUTH = 0x20
    ANY = 0xFF


class PolicyKind(enum.IntEnum):
    """Ceph's Messenger::Policy presets (MSGR_POLICY_*)."""

    LOSSY_CLIENT = 1
    LOSSLESS_CLIENT = 2
    LOSSLESS_PEER = 3
    LOSSLESS_PEER_REUSE = 4
    STATEFUL_SERVER = 5
    STATELESS_SERVER = 6
    STATELESS_REGISTERED_SERVER = 7


class PolicyFlag(enum.IntFlag):
    """msgr_policy.flags bits (MSGR_POLICY_F_*)."""

    LOSSY = 0x1
    SERVER = 0x2
    STANDBY = 0x4
    RESETCHECK = 0x8
    REGISTER_LOSSY_CLIENTS = 0x10


class EventType(enum.IntEnum):
    """What a received item is (MSGR_EVENT_*). Messages are returned as
    Message objects; the other types as Event objects."""

    MESSAGE = 1
    CONNECT = 2
    ACCEPT = 3
    RESET = 4
    REMOTE_RESET = 5
    REFUSED = 6


class ConnState(enum.IntEnum):
    """A connection's state (MSGR_CONN_*)."""

    NONE = 0
    CONNECTING = 1
    ACCEPTING = 2
    OPEN = 3
    STANDBY = 4
    BACKOFF = 5
    CLOSED = 6


class Segment(enum.IntEnum):
    """The three payload segments of a message (MSGR_SEG_*)."""

    FRONT = _lib.SEG_FRONT
    MIDDLE = _lib.SEG_MIDDLE
    DATA = _lib.SEG_DATA


class Priority(enum.IntEnum):
    """Ceph's CEPH_MSG_PRIO_* (higher is sent and dispatched first)."""

    LOW = _lib.PRIO_LOW
    DEFAULT = _lib.PRIO_DEFAULT
    HIGH = _lib.PRIO_HIGH
    HIGHEST = _lib.PRIO_HIGHEST


#: Largest segment length (msgr2 carries it in 32 bits).
SEGMENT_MAX = _lib.SEGMENT_MAX
#: Where add_dispatcher puts a dispatcher in the chain.
HEAD = _lib.HEAD
TAIL = _lib.TAIL

__all__ = [
    "EntityType",
    "PolicyKind",
    "PolicyFlag",
    "EventType",
    "ConnState",
    "Segment",
    "Priority",
    "SEGMENT_MAX",
    "HEAD",
    "TAIL",
]
