"""msgr: Ceph's async messenger (msgr2), rebuilt in Go, for Python.

A ctypes binding of libmsgr (include/msgr.h). Messages and connection
events are received by your own thread in batches (pull mode), so nothing
runs on the library's threads:

    import msgr

    with msgr.Messenger("osd.0", nonce=0) as srv:
        srv.bind("127.0.0.1:0")
        srv.start()
        for item in srv.recv_batch(timeout=1.0):
            if isinstance(item, msgr.Message):
                item.conn.send(item)          # echo it back

``msgr.aio`` has the asyncio layer; ``msgr.Dispatcher`` the Ceph-style
callbacks, called from your pull loop.
"""

from . import _lib
from .connection import Connection, ConnInfo
from .constants import (
    HEAD,
    SEGMENT_MAX,
    TAIL,
    ConnState,
    EntityType,
    EventType,
    PolicyFlag,
    PolicyKind,
    Priority,
    Segment,
)
from .dispatcher import Dispatcher, Event
from .errors import (
    AddressInUse,
    AuthError,
    BadHandle,
    BufferTooSmall,
    ConnectionRefused,
    Deadlock,
    Error,
    ForkedChild,
    InternalError,
    InvalidArgument,
    IOFailure,
    MessageTooLarge,
    MessengerShutdown,
    NotConnected,
    NotSupported,
    OutOfMemory,
    ProtocolError,
    Timeout,
    WouldBlock,
    WrongState,
)
from .message import Buffer, Header, Message
from .messenger import CopiedItem, Item, Messenger, ReadBatch, Received, live_counts
from .policy import Policy

__version__ = "0.2.0"
#: The loaded library's version ("MAJOR.MINOR.PATCH") and path.
library_version: str = _lib.version_string
library_path: str = _lib.path
LibraryError = _lib.LibraryError

__all__ = [
    "Messenger",
    "Connection",
    "ConnInfo",
    "Message",
    "Header",
    "Buffer",
    "Policy",
    "Dispatcher",
    "Event",
    "Item",
    "Received",
    "ReadBatch",
    "CopiedItem",
    "EntityType",
    "EventType",
    "ConnState",
    "PolicyKind",
    "PolicyFlag",
    "Priority",
    "Segment",
    "SEGMENT_MAX",
    "HEAD",
    "TAIL",
    "Error",
    "InvalidArgument",
    "NotConnected",
    "ConnectionRefused",
    "Timeout",
    "MessageTooLarge",
    "MessengerShutdown",
    "BadHandle",
    "WouldBlock",
    "OutOfMemory",
    "ProtocolError",
    "AuthError",
    "BufferTooSmall",
    "WrongState",
    "Deadlock",
    "ForkedChild",
    "InternalError",
    "NotSupported",
    "AddressInUse",
    "IOFailure",
    "LibraryError",
    "live_counts",
    "library_version",
    "library_path",
]
