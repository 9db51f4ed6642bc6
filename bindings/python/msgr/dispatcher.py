"""Dispatcher and Event: what the pull loop hands to application code.

The Python API receives in pull mode (see Messenger.recv_batch): messages
and connection events are taken from the library by the application's own
thread, so no callback ever runs on a library thread. A Dispatcher is the
Ceph-style way to consume them: subclass it, add it with
``Messenger.add_dispatcher``, and drive it with ``Messenger.dispatch_once`` /
``Messenger.run`` (or ``msgr.aio.Messenger.run``) from your loop; its methods
are then called on that thread, one at a time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .constants import EventType

if TYPE_CHECKING:  # pragma: no cover
    from .connection import Connection
    from .message import Message


class Event:
    """A connection event (anything received that is not a message)."""

    __slots__ = ("type", "conn")

    type: EventType
    conn: "Connection"

    def __init__(self, type: EventType, conn: "Connection") -> None:
        self.type = type
        self.conn = conn

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Event) and other.type == self.type and other.conn == self.conn

    def __hash__(self) -> int:
        return hash((self.type, self.conn))

    def __repr__(self) -> str:
        name = self.type.name if isinstance(self.type, EventType) else str(self.type)
        return f"<msgr.Event {name} conn={self.conn.id:#x}>"


class Dispatcher:
    """Ceph's Dispatcher, called from the pull loop (the thread that calls
    Messenger.dispatch_once / run). Override what you need; the defaults do
    nothing and decline.

    The chain (Messenger.add_dispatcher order) is walked as in Ceph:
    ``dispatch`` until one returns True (a message nobody takes is
    released), ``handle_reset`` / ``handle_refused`` until one returns True,
    the other events go to every dispatcher. An exception raised here
    propagates out of dispatch_once/run; the rest of that batch is kept and
    delivered by the next call.
    """

    def dispatch(self, conn: "Connection", msg: "Message") -> bool:
        """A message arrived on conn (Ceph ms_dispatch). Return True if
        handled. msg is yours: keep it, send it on, or let it go."""
        return False

    def handle_connect(self, conn: "Connection") -> None:
        """An outgoing session is up (ms_handle_connect)."""

    def handle_accept(self, conn: "Connection") -> None:
        """An incoming session is up (ms_handle_accept)."""

    def handle_reset(self, conn: "Connection") -> bool:
        """A lossy connection faulted or was reset; what was queued on it
        is gone (ms_handle_reset). Return True if handled."""
        return False

    def handle_remote_reset(self, conn: "Connection") -> None:
        """The peer reset the session (ms_handle_remote_reset)."""

    def handle_refused(self, conn: "Connection") -> bool:
        """The peer refused the connection (ms_handle_refused)."""
        return False


__all__ = ["Dispatcher", "Event"]
