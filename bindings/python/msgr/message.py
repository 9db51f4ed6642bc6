"""Message: Ceph's Message (a header and the front, middle and data
segments) over libmsgr's reference-counted msgr_msg."""

from __future__ import annotations

import ctypes
import sys
import threading
from ctypes import addressof, c_char, c_ubyte, c_void_p, sizeof
from typing import TYPE_CHECKING, Any, List, NamedTuple, Optional, Tuple, Union

from . import _lib
from ._lib import lib
from .constants import SEGMENT_MAX, Segment
from .errors import BadHandle, InvalidArgument, MessageTooLarge, WrongState, from_code

if TYPE_CHECKING:  # pragma: no cover
    from .connection import Connection

#: What a segment or a send accepts: any C-contiguous buffer (bytes,
#: bytearray, memoryview, array.array, mmap...).
Buffer = Union[bytes, bytearray, memoryview]

_put = lib.msgr_msg_put
_ref = lib.msgr_msg_ref
_get_segment = lib.msgr_msg_get_segment
_set_segment = lib.msgr_msg_set_segment
_msg_type = lib.msgr_msg_type
_getrefcount = sys.getrefcount
_OFF = _lib.BYTES_OFFSET
_ArgumentError = ctypes.ArgumentError


class _Scratch(threading.local):
    """Per-thread out-parameters (passed by address), so a call allocates no
    ctypes object and two threads never share one."""

    def __init__(self) -> None:
        self.buf = (ctypes.c_uint64 * 4)()
        base = addressof(self.buf)
        self.a0, self.a1 = base, base + 8  # out addresses of words 0, 1
        self.w = memoryview(self.buf).cast("B").cast("Q")  # reads them
        self.hdr = _lib.msgr_msg_header(size=sizeof(_lib.msgr_msg_header))
        self.ahdr = addressof(self.hdr)


scratch = _Scratch()


def _u16(name: str, v: int) -> int:
    if type(v) is not int and not isinstance(v, int):
        raise TypeError(f"{name} must be an int, not {type(v).__name__}")
    if not 0 <= v <= 0xFFFF:
        raise InvalidArgument(detail=f"{name} {v} is out of range 0..65535")
    return v


def _u64(name: str, v: int) -> int:
    if type(v) is not int and not isinstance(v, int):
        raise TypeError(f"{name} must be an int, not {type(v).__name__}")
    if not 0 <= v <= 0xFFFFFFFFFFFFFFFF:
        raise InvalidArgument(detail=f"{name} {v} is out of range for a u64")
    return v


def _seg(seg: int) -> int:
    if seg in (0, 1, 2):
        return int(seg)
    if not isinstance(seg, int):
        raise TypeError(f"segment must be a Segment or 0..2, not {type(seg).__name__}")
    raise InvalidArgument(detail=f"segment {seg} is not FRONT (0), MIDDLE (1) or DATA (2)")


def buffer_address(obj: Any) -> Tuple[int, int, Any]:
    """(address, length, keepalive) of a buffer's bytes, for a call that
    reads them. bytes and writable buffers are passed in place; a
    read-only or non-contiguous buffer other than bytes is copied once.
    Keep `keepalive` referenced until the call returns."""
    t = type(obj)
    if t is bytes:
        n = len(obj)
        if _OFF is not None:
            return id(obj) + _OFF, n, obj
        p = ctypes.c_char_p(obj)
        return ctypes.cast(p, c_void_p).value or 0, n, (obj, p)
    if t is bytearray:
        n = len(obj)
        if n == 0:
            return 0, 0, None
        a = (c_char * n).from_buffer(obj)
        return addressof(a), n, a
    try:
        mv = obj if t is memoryview else memoryview(obj)
    except TypeError:
        raise TypeError(
            f"expected bytes, bytearray, memoryview or another buffer, not {t.__name__}"
        ) from None
    try:
        readonly = mv.readonly
    except ValueError:
        raise BadHandle(detail="the memoryview was released (its message was closed or sent)") from None
    n = mv.nbytes
    if n == 0:
        return 0, 0, None
    if readonly:
        o = mv.obj
        if mv.c_contiguous:
            if type(o) is bytes and n == len(o):
                return buffer_address(o)
            if isinstance(o, ctypes.Array) and n == sizeof(o):
                return addressof(o), n, mv  # a Message segment view, whole
        return buffer_address(mv.tobytes())
    if not mv.c_contiguous:
        return buffer_address(mv.tobytes())
    if mv.format != "B" or mv.ndim != 1:
        mv = mv.cast("B")
    a = (c_char * n).from_buffer(mv)
    return addressof(a), n, a


class Header(NamedTuple):
    """A message's header (msgr_msg_header)."""

    type: int
    priority: int
    version: int
    compat_version: int
    src_type: int  # sender's entity type (received messages)
    seq: int  # per-session sequence number (received messages)
    tid: int
    src_num: int  # sender's entity number, -1 if unknown
    front_len: int
    middle_len: int
    data_len: int


class _Owner:
    """Holds the message's C reference once a segment view exists: every
    view's memory (a ctypes array) refers to it, so a view or any slice of
    it never outlives the bytes it shows; the last one to go puts it."""

    __slots__ = ("p",)

    def __init__(self, p: int) -> None:
        self.p = p

    def __del__(self) -> None:
        p = self.p
        if p:
            self.p = 0
            try:
                _put(p)
            except Exception:  # pragma: no cover - interpreter shutdown
                pass


class Message:
    """A message: type, priority, version, tid, and three segments.

    Build one with ``Message(type, front=..., middle=..., data=...)`` (any
    buffer: bytes, bytearray, memoryview...) or receive one from
    Messenger.recv / recv_batch (then ``conn`` is the connection it came
    on). The object holds one reference on the C message:
    ``close()`` (or leaving a ``with`` block, or dropping the last Python
    reference) releases it; ``Connection.send(msg)`` hands it to the library.
    Either way the message is closed: every later call raises BadHandle.

    Segments are read without copying: ``msg.front`` / ``msg.data`` /
    ``msg.segment(seg)`` return a read-only memoryview of the message's own
    memory. Such a view is released when the message is closed or sent
    (using it then raises ValueError, Python's error for a released view);
    a slice or other buffer derived from it keeps the bytes alive on its
    own, so nothing can read freed memory. ``tobytes(seg)`` copies.

    A Message is not thread-safe: use one from one thread at a time.
    """

    __slots__ = ("_p", "_own", "_views", "conn", "__weakref__")

    _p: int
    _own: Optional[_Owner]
    _views: Optional[List[memoryview]]
    #: The connection a received message arrived on (None for a message
    #: built here).
    conn: Optional["Connection"]

    def __init__(
        self,
        type: int,
        *,
        front: Buffer = b"",
        middle: Buffer = b"",
        data: Buffer = b"",
        tid: int = 0,
        priority: Optional[int] = None,
        version: Optional[int] = None,
        compat_version: Optional[int] = None,
    ) -> None:
        self._p = 0
        self._own = None
        self._views = None
        self.conn = None
        s = scratch
        rc = lib.msgr_msg_alloc(s.a0, _u16("type", type))
        if rc:
            raise from_code(rc)
        self._p = s.w[0]
        try:
            if tid:
                self.tid = tid
            if priority is not None:
                self.priority = priority
            if version is not None or compat_version is not None:
                self.set_version(
                    1 if version is None else version,
                    (version or 1) if compat_version is None else compat_version,
                )
            for seg, buf in ((0, front), (1, middle), (2, data)):
                if buf is not None and (type_(buf) is not bytes or buf):
                    self.set_segment(seg, buf)
        except BaseException:
            self.close()
            raise

    @classmethod
    def _adopt(cls, p: int, conn: Optional["Connection"] = None) -> "Message":
        """Wraps a msgr_msg pointer whose one reference the caller gives."""
        m = _new(cls)
        m._p = p
        m._own = None
        m._views = None
        m.conn = conn
        return m

    # --- lifetime -----------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once closed or sent."""
        return not self._p

    def _closed(self) -> BadHandle:
        return BadHandle(detail="message is closed (closed by close(), or sent: a sent message belongs to the library)")

    def _release_views(self) -> None:
        views = self._views
        if views:
            self._views = None
            for mv in views:
                try:
                    mv.release()
                except BufferError:
                    # Something holds a buffer export of this view (numpy,
                    # ctypes.from_buffer...): it keeps the bytes alive
                    # through _Owner, so leaving it is safe.
                    pass

    def close(self) -> None:
        """Releases the message (msgr_msg_put) and its segment views.
        Idempotent."""
        p = self._p
        if not p:
            return
        self._p = 0
        self._release_views()
        if self._own is None:
            rc = _put(p)
            if rc:
                raise from_code(rc)
        else:
            self._own = None  # _Owner puts it once no view needs it

    def __del__(self) -> None:
        p = self._p
        if p:
            self._p = 0
            if self._own is None:
                try:
                    _put(p)
                except Exception:  # pragma: no cover - interpreter shutdown
                    pass

    def __enter__(self) -> "Message":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _take(self) -> int:
        """For send: returns the pointer whose reference the caller now
        holds (segment views are released; views derived from them keep
        their own reference). The message is left open, for the caller to
        mark sent on success."""
        p = self._p
        if not p:
            raise self._closed()
        if self._views:
            self._release_views()
        own = self._own
        if own is not None:
            if _getrefcount(self._own) > 2:
                rc = _ref(p)  # the views keep theirs; this one is sent
                if rc:
                    raise from_code(rc)
            else:
                own.p = 0
            self._own = None
        return p

    def _writable(self) -> int:
        """Before replacing a segment: no view of the old one may remain."""
        p = self._p
        if not p:
            raise self._closed()
        if self._views:
            self._release_views()
        if self._own is not None:
            if _getrefcount(self._own) > 2:
                raise WrongState(
                    detail="a buffer made from a view of this message's segments (a slice, "
                    "numpy array...) is still alive: drop it before changing the segments"
                )
            self._own.p = 0
            self._own = None
        return p

    # --- header -------------------------------------------------------------

    @property
    def type(self) -> int:
        p = self._p
        if not p:
            raise self._closed()
        t: int = _msg_type(p)
        return t

    def header(self) -> Header:
        """The whole header in one call."""
        p = self._p
        if not p:
            raise self._closed()
        s = scratch
        rc = lib.msgr_msg_get_header(p, s.ahdr)
        if rc:
            raise from_code(rc)
        h = s.hdr
        return Header(
            h.type,
            h.priority,
            h.version,
            h.compat_version,
            h.src_type,
            h.seq,
            h.tid,
            h.src_num,
            h.front_len,
            h.middle_len,
            h.data_len,
        )

    @property
    def tid(self) -> int:
        return self.header().tid

    @tid.setter
    def tid(self, tid: int) -> None:
        p = self._p
        if not p:
            raise self._closed()
        rc = lib.msgr_msg_set_tid(p, _u64("tid", tid))
        if rc:
            raise from_code(rc)

    @property
    def priority(self) -> int:
        return self.header().priority

    @priority.setter
    def priority(self, priority: int) -> None:
        p = self._p
        if not p:
            raise self._closed()
        rc = lib.msgr_msg_set_priority(p, _u16("priority", priority))
        if rc:
            raise from_code(rc)

    @property
    def version(self) -> int:
        return self.header().version

    @property
    def compat_version(self) -> int:
        return self.header().compat_version

    def set_version(self, version: int, compat_version: int) -> None:
        p = self._p
        if not p:
            raise self._closed()
        rc = lib.msgr_msg_set_version(p, _u16("version", version), _u16("compat_version", compat_version))
        if rc:
            raise from_code(rc)

    @property
    def seq(self) -> int:
        return self.header().seq

    @property
    def src(self) -> Tuple[int, int]:
        """(entity type, entity number) of the sender (received messages)."""
        h = self.header()
        return h.src_type, h.src_num

    # --- segments -----------------------------------------------------------

    def segment(self, seg: int) -> memoryview:
        """A read-only, zero-copy view of a segment (see the class doc for
        how long it stays valid)."""
        p = self._p
        if not p:
            raise self._closed()
        s = scratch
        try:
            rc = _get_segment(p, seg, s.a0, s.a1)
        except _ArgumentError:
            raise TypeError(f"segment must be a Segment or 0..2, not {type_(seg).__name__}") from None
        if rc:
            raise from_code(rc)
        w = s.w
        n = w[1]
        if not n:
            return memoryview(b"")
        own = self._own
        if own is None:
            own = self._own = _Owner(p)
        arr = (c_ubyte * n).from_address(w[0])
        arr._keep = own  # type: ignore[attr-defined]
        mv = memoryview(arr).cast("B").toreadonly()
        views = self._views
        if views is None:
            self._views = [mv]
        else:
            views.append(mv)
        return mv

    def tobytes(self, seg: int = Segment.DATA) -> bytes:
        """A copy of a segment."""
        p = self._p
        if not p:
            raise self._closed()
        s = scratch
        try:
            rc = _get_segment(p, seg, s.a0, s.a1)
        except _ArgumentError:
            raise TypeError(f"segment must be a Segment or 0..2, not {type_(seg).__name__}") from None
        if rc:
            raise from_code(rc)
        w = s.w
        n = w[1]
        return _string_at(w[0], n) if n else b""

    def segment_len(self, seg: int = Segment.DATA) -> int:
        p = self._p
        if not p:
            raise self._closed()
        s = scratch
        rc = _get_segment(p, _seg(seg), s.a0, s.a1)
        if rc:
            raise from_code(rc)
        return s.w[1]

    def set_segment(self, seg: int, data: Buffer) -> None:
        """Replaces a segment with a copy of data (any buffer). Only on a
        message you alone hold (not received-and-shared, not sent)."""
        seg = _seg(seg)
        addr, n, keep = buffer_address(data)
        if n > SEGMENT_MAX:
            raise MessageTooLarge(detail=f"segment of {n} bytes, the most is {SEGMENT_MAX}")
        p = self._writable()
        rc = _set_segment(p, seg, addr or None, n)
        del keep
        if rc:
            raise from_code(rc)

    def reserve(self, seg: int, n: int) -> memoryview:
        """Replaces a segment with n uninitialised bytes owned by the
        message and returns a writable view to fill them (no copy).
        The view is released when the message is sent or closed."""
        seg = _seg(seg)
        if not isinstance(n, int):
            raise TypeError(f"n must be an int, not {type_(n).__name__}")
        if n < 0:
            raise InvalidArgument(detail=f"negative length {n}")
        if n > SEGMENT_MAX:
            raise MessageTooLarge(detail=f"segment of {n} bytes, the most is {SEGMENT_MAX}")
        p = self._writable()
        s = scratch
        rc = lib.msgr_msg_reserve_segment(p, seg, n, s.a0)
        if rc:
            raise from_code(rc)
        if n == 0:
            return memoryview(bytearray())
        own = self._own = _Owner(p)
        arr = (c_ubyte * n).from_address(s.w[0])
        arr._keep = own  # type: ignore[attr-defined]
        mv = memoryview(arr).cast("B")
        self._views = [mv]
        return mv

    @property
    def front(self) -> memoryview:
        return self.segment(0)

    @front.setter
    def front(self, data: Buffer) -> None:
        self.set_segment(0, data)

    @property
    def middle(self) -> memoryview:
        return self.segment(1)

    @middle.setter
    def middle(self, data: Buffer) -> None:
        self.set_segment(1, data)

    @property
    def data(self) -> memoryview:
        return self.segment(2)

    @data.setter
    def data(self, data: Buffer) -> None:
        self.set_segment(2, data)

    def copy(self) -> "Message":
        """A new message with the same header and copies of the segments
        (msgr_msg_copy)."""
        p = self._p
        if not p:
            raise self._closed()
        s = scratch
        rc = lib.msgr_msg_copy(p, s.a0)
        if rc:
            raise from_code(rc)
        return Message._adopt(s.w[0])

    def __repr__(self) -> str:
        if not self._p:
            return "<msgr.Message closed>"
        h = self.header()
        return (
            f"<msgr.Message type={h.type} tid={h.tid} prio={h.priority} "
            f"front={h.front_len} middle={h.middle_len} data={h.data_len}>"
        )


type_ = type
_new = object.__new__
_string_at = ctypes.string_at

__all__ = ["Message", "Header", "Buffer", "buffer_address"]
