"""Connection: a session with one peer (Ceph's Connection)."""

from __future__ import annotations

import ctypes
import struct
import sys
import threading
import time
from array import array
from ctypes import c_size_t, sizeof
from typing import TYPE_CHECKING, Any, List, NamedTuple, Optional, Sequence

from . import _lib
from ._lib import lib
from .constants import SEGMENT_MAX, ConnState, EntityType
from .errors import BadHandle, Error, InvalidArgument, MessageTooLarge, from_code
from .message import Buffer, Message, _seg, _u16, _u64, buffer_address

if TYPE_CHECKING:  # pragma: no cover
    from .messenger import Messenger

_send = lib.msgr_conn_send
_send_copy = lib.msgr_conn_send_copy
_wait_held = lib.msgr_conn_wait_held
_ETIMEDOUT = _lib.ETIMEDOUT
_OUT = struct.Struct("@HHHHQPNPNPN")
assert _OUT.size == sizeof(_lib.msgr_outmsg)
_OUTSZ = _OUT.size
_OFF = _lib.BYTES_OFFSET
_LITTLE = sys.byteorder == "little"


class _SendScratch(threading.local):
    def __init__(self) -> None:
        self.out = ctypes.create_string_buffer(_OUTSZ)
        self.out_addr = ctypes.addressof(self.out)
        self.sent = c_size_t()
        self.psent = ctypes.addressof(self.sent)
        self.info = _lib.msgr_conn_info(size=sizeof(_lib.msgr_conn_info))
        self.pinfo = ctypes.addressof(self.info)
        self.text = ctypes.create_string_buffer(512)


_scratch = _SendScratch()


class ConnInfo(NamedTuple):
    """What msgr_conn_get_info reports."""

    state: ConnState
    features: int
    peer_num: int  # -1 until known
    peer_type: int  # EntityType value (0 until known on the server side)
    lossy: bool
    local: bool  # the messenger's connection to itself
    msgs_sent: int
    msgs_recv: int
    bytes_sent: int
    bytes_recv: int
    queued: int  # messages waiting to be written
    unacked: int = 0  # lossless: written, kept until the peer acknowledges them
    last_fault: int = 0  # MSGR_E* code of the most recent fault (0: none); see Connection.last_fault()
    faults: int = 0  # how many faults the connection had


def _hdr_word(type: int, priority: int, version: int, compat: int) -> int:
    """The first 8 bytes of a msgr_outmsg as one native u64."""
    if _LITTLE:
        return type | priority << 16 | version << 32 | compat << 48
    return type << 48 | priority << 32 | version << 16 | compat


class Connection:
    """A connection handle.

    Two kinds of objects exist. ``Messenger.connect()`` and ``hold()`` return
    one that holds a reference (msgr_conn_get): the handle stays valid
    until ``close()``, even after the connection itself closed. The
    connection of a received message or event is borrowed: valid while the
    library keeps the connection; once it is gone, calls raise BadHandle
    (never a crash); ``close()`` on it does nothing.

    ``close()`` only drops this object's reference: to close the network
    connection use ``mark_down()``. Connections compare equal (and hash) by
    their handle id, so they can key a dict of per-peer state.
    """

    __slots__ = ("_id", "_owned", "_ms", "__weakref__")

    _id: int
    _owned: bool
    _ms: Optional["Messenger"]

    def __init__(self) -> None:
        raise TypeError("Connections come from Messenger.connect() or from received messages")

    @classmethod
    def _wrap(cls, cid: int, owned: bool, ms: Optional["Messenger"]) -> "Connection":
        c = object.__new__(cls)
        c._id = cid
        c._owned = owned
        c._ms = ms
        return c

    # --- identity and lifetime ---------------------------------------------

    @property
    def id(self) -> int:
        """The handle (msgr_conn.id); 0 once closed."""
        return self._id

    @property
    def messenger(self) -> Optional["Messenger"]:
        return self._ms

    @property
    def owned(self) -> bool:
        """True if this object holds a reference (connect(), hold())."""
        return self._owned

    @property
    def closed(self) -> bool:
        return not self._id

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Connection) and other._id == self._id

    def __hash__(self) -> int:
        return hash(self._id)

    def _closed_error(self) -> BadHandle:
        return BadHandle(detail="connection handle is closed")

    def hold(self) -> "Connection":
        """A new object holding its own reference (msgr_conn_get): the
        handle stays valid until that object's close()."""
        cid = self._id
        if not cid:
            raise self._closed_error()
        rc = lib.msgr_conn_get(cid)
        if rc:
            raise from_code(rc)
        return type(self)._wrap(cid, True, self._ms)

    def close(self) -> None:
        """Drops this object's reference (msgr_conn_put), if it holds one.
        Idempotent; the network connection is closed by mark_down()."""
        cid = self._id
        if not cid or not self._owned:
            return
        self._id = 0
        ms = self._ms
        if ms is not None:
            ms._forget_conn(self)
            if ms.closed:
                return  # destroy made the handle stale already
        rc = lib.msgr_conn_put(cid)
        if rc and rc != _lib.EBADF:
            raise from_code(rc)

    def _stale(self) -> None:
        """The messenger was destroyed: the handle is gone."""
        self._id = 0

    def __del__(self) -> None:
        cid = self._id
        if cid and self._owned:
            self._id = 0
            ms = self._ms
            if ms is not None and ms.closed:
                return
            try:
                lib.msgr_conn_put(cid)
            except Exception:  # pragma: no cover - interpreter shutdown
                pass

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- sending -------------------------------------------------------------

    def send(self, msg: Message) -> None:
        """Queues msg for the peer; the library takes it (msg is closed).
        On failure (NotConnected: the connection was marked down or reset)
        msg stays yours. Never blocks."""
        cid = self._id
        if not cid:
            raise self._closed_error()
        if type(msg) is not Message and not isinstance(msg, Message):
            raise TypeError(
                f"send takes a Message, not {type(msg).__name__} (send_copy(type, data=...) sends a buffer)"
            )
        p = msg._p
        if not p or msg._own is not None or msg._views:
            p = msg._take()
        rc = _send(cid, p)
        if rc:
            raise from_code(rc)
        msg._p = 0

    def send_many(self, msgs: Sequence[Message]) -> None:
        """Sends msgs in order in one call (msgr_conn_send_many). Those
        sent are closed; on failure the exception's ``sent`` attribute says
        how many went, and the rest stay yours."""
        cid = self._id
        if not cid:
            raise self._closed_error()
        n = len(msgs)
        if n == 0:
            return
        ptrs = (ctypes.c_void_p * n)()
        for i, m in enumerate(msgs):
            if not isinstance(m, Message):
                raise TypeError(f"send_many takes Messages, not {type(m).__name__}")
            ptrs[i] = m._take()
        s = _scratch
        rc = lib.msgr_conn_send_many(cid, ptrs, n, s.psent)
        sent = s.sent.value
        for m in msgs[:sent]:
            m._p = 0
        if rc:
            e = from_code(rc)
            e.sent = sent  # type: ignore[attr-defined]
            raise e

    def send_copy(
        self,
        type: int,
        data: Buffer = b"",
        *,
        front: Buffer = b"",
        middle: Buffer = b"",
        tid: int = 0,
        priority: int = 0,
        version: int = 0,
        compat_version: int = 0,
    ) -> None:
        """Sends a message described in place (msgr_conn_send_copy): the
        segments (any buffers) are copied during the call, no Message is
        built. The fastest way to send one message. priority/version 0
        mean the defaults (MSGR_PRIO_DEFAULT, 1)."""
        cid = self._id
        if not cid:
            raise self._closed_error()
        if type.__class__ is not int:
            _u16("type", type)
        if not 0 <= type <= 0xFFFF:
            _u16("type", type)
        if priority or version or compat_version:
            _u16("priority", priority)
            _u16("version", version)
            _u16("compat_version", compat_version)
        if tid:
            _u64("tid", tid)
        if data.__class__ is bytes and _OFF is not None:
            da, dn, dk = id(data) + _OFF, len(data), None
        else:
            da, dn, dk = buffer_address(data)
        if front:
            fa, fn, fk = buffer_address(front)
        else:
            fa = fn = 0
            fk = None
        if middle:
            ma, mn, mk = buffer_address(middle)
        else:
            ma = mn = 0
            mk = None
        s = _scratch
        _OUT.pack_into(s.out, 0, type, priority, version, compat_version, tid, fa, fn, ma, mn, da, dn)
        rc = _send_copy(cid, s.out_addr, 1, _OUTSZ, None)
        del dk, fk, mk
        if rc:
            raise from_code(rc)

    def send_copy_many(
        self,
        type: int,
        payloads: Sequence[Buffer],
        *,
        segment: int = 2,
        tid: int = 0,
        priority: int = 0,
    ) -> None:
        """Sends len(payloads) messages of one type in one call, each
        payload (copied) as the given segment (DATA by default); all are
        checked (sizes included) before any is queued."""
        cid = self._id
        if not cid:
            raise self._closed_error()
        _u16("type", type)
        if priority:
            _u16("priority", priority)
        if tid:
            _u64("tid", tid)
        seg = _seg(segment)
        k = len(payloads)
        if k == 0:
            return
        keep: List[Any] = []
        if _OFF is not None and all(p.__class__ is bytes for p in payloads):
            off = _OFF
            addrs = array("Q", [id(p) + off for p in payloads])
            lens = array("Q", map(len, payloads))
        else:
            addrs = array("Q", bytes(8 * k))
            lens = array("Q", bytes(8 * k))
            for i, p in enumerate(payloads):
                a, n, kp = buffer_address(p)
                addrs[i] = a
                lens[i] = n
                keep.append(kp)
        if max(lens) > SEGMENT_MAX:
            raise MessageTooLarge(detail=f"a payload is longer than {SEGMENT_MAX} bytes")
        words = array("Q", bytes(_OUTSZ * k))
        words[0::8] = array("Q", [_hdr_word(type, priority, 0, 0)]) * k
        if tid:
            words[1::8] = array("Q", [tid]) * k
        words[2 + 2 * seg :: 8] = addrs
        words[3 + 2 * seg :: 8] = lens
        s = _scratch
        rc = _send_copy(cid, words.buffer_info()[0], k, _OUTSZ, s.psent)
        sent = s.sent.value
        del keep, payloads
        if rc:
            e = from_code(rc)
            e.sent = sent  # type: ignore[attr-defined]
            raise e

    def send_keepalive(self) -> None:
        cid = self._id
        if not cid:
            raise self._closed_error()
        rc = lib.msgr_conn_send_keepalive(cid)
        if rc:
            raise from_code(rc)

    def mark_down(self) -> None:
        """Closes the connection and drops its queues, without a reset event
        (Ceph mark_down). Later sends raise NotConnected."""
        cid = self._id
        if not cid:
            raise self._closed_error()
        rc = lib.msgr_conn_mark_down(cid)
        if rc:
            raise from_code(rc)
        if self._ms is not None:
            self._ms._uncache(cid)

    # --- state ----------------------------------------------------------------

    def _raw_info(self) -> Any:
        """msgr_conn_get_info into this thread's scratch struct."""
        cid = self._id
        if not cid:
            raise self._closed_error()
        s = _scratch
        rc = lib.msgr_conn_get_info(cid, s.pinfo)
        if rc:
            raise from_code(rc)
        return s.info

    def info(self) -> ConnInfo:
        i = self._raw_info()
        try:
            state = ConnState(i.state)
        except ValueError:  # a state added by a later library
            state = i.state
        return ConnInfo(
            state,
            i.features,
            i.peer_num,
            i.peer_type,
            bool(i.lossy),
            bool(i.local),
            i.msgs_sent,
            i.msgs_recv,
            i.bytes_sent,
            i.bytes_recv,
            i.queued,
            i.unacked,
            i.last_fault,
            i.faults,
        )

    def last_fault(self) -> Optional[Error]:
        """Why the connection last faulted (a socket error, a timeout, bad
        input from the peer, a refused connect), as the msgr.Error subclass
        of its code with the library's text as detail; None if it never
        faulted. A lossless session reconnects after a fault, so this also
        says why it did."""
        code = self.info().last_fault
        if not code:
            return None
        buf = ctypes.create_string_buffer(512)
        rc = lib.msgr_conn_last_fault(self._id, buf, len(buf))
        if rc and rc != _lib.ERANGE:
            raise from_code(rc)
        return from_code(code, buf.value.decode(errors="replace"))

    @property
    def queued(self) -> int:
        """Messages waiting to be written (for a sender's flow control:
        send never blocks)."""
        q: int = self._raw_info().queued
        return q

    @property
    def held(self) -> int:
        """Messages the library holds for the peer: queued plus, on lossless
        sessions, written but not yet acknowledged (what wait_held bounds)."""
        i = self._raw_info()
        n: int = i.queued + i.unacked
        return n

    def wait_held(self, max_held: int, timeout: Optional[float] = None) -> None:
        """Flow control without polling: blocks until the library holds at
        most max_held messages for the peer (see held), the worker waking
        this thread. Raises Timeout when timeout (seconds; None: forever)
        runs out first, NotConnected if the connection closes meanwhile,
        Deadlock from a library callback. The GIL is released while waiting;
        long waits are cut into slices so signal handlers (Ctrl-C) run."""
        cid = self._id
        if not cid:
            raise self._closed_error()
        if not isinstance(max_held, int) or max_held < 0:
            raise InvalidArgument(detail=f"max_held must be an int >= 0, not {max_held!r}")
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if deadline is None:
                ms = 200
            else:
                ms = max(0, min(200, int((deadline - time.monotonic()) * 1000) + 1))
            rc = _wait_held(cid, max_held, ms)
            if rc == 0:
                return
            if rc != _ETIMEDOUT or (deadline is not None and time.monotonic() >= deadline):
                raise from_code(rc)
            cid = self._id
            if not cid:
                raise self._closed_error()

    @property
    def state(self) -> ConnState:
        return self.info().state

    @property
    def is_open(self) -> bool:
        """True while the session is up (state OPEN)."""
        try:
            return self.info().state == ConnState.OPEN
        except BadHandle:
            return False

    def _text(self, fn: Any) -> str:
        cid = self._id
        if not cid:
            raise self._closed_error()
        buf = _scratch.text
        rc = fn(cid, buf, len(buf))
        if rc and rc != _lib.ERANGE:
            raise from_code(rc)
        return buf.value.decode(errors="replace")

    @property
    def peer_addr(self) -> str:
        """The peer's address, Ceph-style ("v2:127.0.0.1:6800/0")."""
        return self._text(lib.msgr_conn_peer_addr)

    @property
    def peer_name(self) -> str:
        """The peer's entity name ("osd.3"; "client.?" until known)."""
        return self._text(lib.msgr_conn_peer_name)

    @property
    def peer_type(self) -> int:
        t = self.info().peer_type
        try:
            return EntityType(t)
        except ValueError:
            return t

    def __repr__(self) -> str:
        if not self._id:
            return "<msgr.Connection closed>"
        try:
            return f"<msgr.Connection {self.peer_name} {self.peer_addr} id={self._id:#x}>"
        except BadHandle:
            return f"<msgr.Connection stale id={self._id:#x}>"


__all__ = ["Connection", "ConnInfo"]

