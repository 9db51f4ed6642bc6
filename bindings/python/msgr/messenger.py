"""Messenger: Ceph's Messenger over libmsgr, receiving in pull mode."""

from __future__ import annotations

import collections
import ctypes
from itertools import repeat
import json
import random
import threading
import time
import warnings
import weakref
from ctypes import byref, c_int, c_uint64, c_void_p, sizeof
from typing import (
    Any,
    Callable,
    Deque,
    Dict,
    Iterator,
    List,
    Mapping,
    NamedTuple,
    Sequence,
    Set,
    overload,
    Optional,
    Tuple,
    Type,
    Union,
)

from . import _lib
from ._lib import lib
from .connection import Connection
from .constants import HEAD, TAIL, EntityType, EventType
from .dispatcher import Dispatcher, Event
from .errors import (
    BadHandle,
    InvalidArgument,
    MessengerShutdown,
    Timeout,
    WouldBlock,
    WrongState,
    from_code,
)
from .message import Message
from .policy import Policy

#: What Messenger.recv / recv_batch return.
Item = Union[Message, Event]


class Received(NamedTuple):
    """A message as Messenger.recv_copy returns it: the header fields and
    the segments as bytes (copies: nothing to close or release)."""

    conn: Connection
    type: int
    data: bytes
    front: bytes
    middle: bytes
    tid: int
    priority: int
    seq: int


#: What Messenger.recv_copy returns.
CopiedItem = Union[Received, Event]


class ReadBatch(Sequence[Received]):
    """The messages one read of a connection brought, as set_fast_dispatch
    hands them over: a sequence of Received (made when first indexed or
    iterated), and the same data by column for code that works a batch at a
    time without making a tuple per message: ``conn`` (one connection for
    the whole batch), ``types``, ``datas`` (bytes), ``tids`` (lists,
    index-aligned). Valid after the callback returns (everything is a
    copy)."""

    __slots__ = ("conn", "types", "datas", "tids", "_fronts", "_middles", "_prios", "_seqs", "_items")

    def __init__(
        self,
        conn: Connection,
        types: List[int],
        datas: List[bytes],
        tids: List[int],
        fronts: List[bytes],
        middles: List[bytes],
        prios: List[int],
        seqs: List[int],
    ) -> None:
        self.conn = conn
        self.types = types
        self.datas = datas
        self.tids = tids
        self._fronts = fronts
        self._middles = middles
        self._prios = prios
        self._seqs = seqs
        self._items: Optional[List[Received]] = None

    def _list(self) -> List[Received]:
        items = self._items
        if items is None:
            n = len(self.types)
            items = self._items = list(
                map(
                    _tuple_new,
                    repeat(Received, n),
                    zip(repeat(self.conn, n), self.types, self.datas, self._fronts, self._middles, self.tids, self._prios, self._seqs),
                )
            )
        return items

    def __len__(self) -> int:
        return len(self.types)

    @overload
    def __getitem__(self, i: int) -> Received: ...

    @overload
    def __getitem__(self, i: slice) -> List[Received]: ...

    def __getitem__(self, i: Union[int, slice]) -> Union[Received, List[Received]]:
        return self._list()[i]

    def __iter__(self) -> Iterator[Received]:
        return iter(self._list())

    def __repr__(self) -> str:
        return f"<msgr.ReadBatch {len(self)} messages conn={self.conn!r}>"
OptionValue = Union[str, int, float, bool]

_recv = lib.msgr_messenger_recv
_EVSZ = sizeof(_lib.msgr_event)
_ETIMEDOUT = _lib.ETIMEDOUT
_EAGAIN = _lib.EAGAIN
# A wait with no timeout is cut into slices this long, so Ctrl-C (and
# other Python signal handlers) run within that time.
_WAIT_SLICE_MS = 200
_CONN_CACHE_MAX = 1024
_new = object.__new__


class _EvScratch(threading.local):
    """Per-thread event array for msgr_messenger_recv (grown on demand)."""

    def __init__(self) -> None:
        self.cap = 0
        self.arr: Any = None
        self.addr = 0
        self.q: Any = None
        self.i: Any = None
        self.grow(256)

    def grow(self, n: int) -> None:
        arr = (_lib.msgr_event * n)()
        raw = memoryview(arr).cast("B")
        self.arr = arr
        self.addr = ctypes.addressof(arr)
        self.q = raw.cast("Q")  # 4 words an event: type|reserved, conn, priv, msg
        self.i = raw.cast("i")  # 8 ints an event: [0] is the type
        self.cap = n


_ev = _EvScratch()

_recv_copy = lib.msgr_messenger_recv_copy
_RXSZ = sizeof(_lib.msgr_rxmsg)
_RXW = _RXSZ // 8  # words a msgr_rxmsg
_ERANGE = _lib.ERANGE
_string_at = ctypes.string_at
_tuple_new = tuple.__new__


class _RxViews:
    """Typed views of a msgr_rxmsg array (for _rx_items)."""

    __slots__ = ("q", "i", "h", "u")

    def __init__(self, raw: memoryview) -> None:
        self.q = raw.cast("Q")  # conn [1], tid [3], seq [4], off [7]
        self.i = raw.cast("i")  # type [0]
        self.h = raw.cast("H")  # msg_type [2], priority [3]
        self.u = raw.cast("I")  # front_len [16], middle_len [17], data_len [18]


_pinned: Set[int] = set()
_gil_ensure = ctypes.pythonapi.PyGILState_Ensure
_gil_ensure.restype = ctypes.c_int
_gil_ensure.argtypes = []


def _pin_thread_state() -> None:
    """ctypes makes and frees a Python thread state around every callback
    from a thread Python did not start (~10 us each). Taking one more
    PyGILState reference the first time a library thread calls keeps its
    thread state, so its later callbacks reuse it (measured, W1 with a
    callback per message: p50 55 -> 30 us)."""
    t = threading.get_ident()
    if t not in _pinned:
        _pinned.add(t)
        _gil_ensure()


class _RxScratch(threading.local):
    """Per-thread msgr_rxmsg array and payload buffer for recv_copy."""

    def __init__(self) -> None:
        self.cap = 0
        self.bufsize = 0
        self.grow(256)
        self.resize(1 << 20)
        self.used = ctypes.c_size_t(0)
        self.pused = ctypes.addressof(self.used)

    def grow(self, n: int) -> None:
        arr = (_lib.msgr_rxmsg * n)()
        self.arr = arr
        self.addr = ctypes.addressof(arr)
        self.views = _RxViews(memoryview(arr).cast("B"))
        self.cap = n

    def resize(self, n: int) -> None:
        self.buf = ctypes.create_string_buffer(n)
        self.baddr = ctypes.addressof(self.buf)
        self.bufsize = n


_rx = _RxScratch()


def _timeout_ms(timeout: Optional[float]) -> int:
    if timeout is None:
        return -1
    if not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be seconds (a number) or None, not {type(timeout).__name__}")
    if timeout < 0:
        raise InvalidArgument(detail=f"negative timeout {timeout}")
    if timeout == 0:
        return 0
    ms = int(timeout * 1000)
    if ms < timeout * 1000:
        ms += 1
    return ms


def _option_text(name: str, value: OptionValue) -> Tuple[bytes, bytes]:
    if not isinstance(name, str):
        raise TypeError(f"option names are str, not {type(name).__name__}")
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (int, float, str)):
        text = str(value)
    else:
        raise TypeError(f"option {name!r}: value must be str, int, float or bool, not {type(value).__name__}")
    if "\0" in name or "\0" in text:
        raise InvalidArgument(detail=f"option {name!r}: NUL character")
    return name.encode(), text.encode()


def _cstr(what: str, s: str) -> bytes:
    if not isinstance(s, str):
        raise TypeError(f"{what} must be a str, not {type(s).__name__}")
    if "\0" in s:
        raise InvalidArgument(detail=f"{what} {s!r} contains a NUL character")
    return s.encode()


class Messenger:
    """A messenger (Ceph's Messenger): one entity name, its listening
    addresses, its connections, and a queue of what it received.

    ::

        with msgr.Messenger("osd.0", nonce=0) as srv:
            srv.bind("127.0.0.1:0")
            srv.start()
            for item in srv.recv_batch(timeout=1.0):
                ...

    name: Ceph's entity name with a numeric id ("client.4242", "osd.3",
    "mon.0", "client.?"). nonce: the address nonce (default: random, as a
    Ceph client's; a server that clients dial as a bare "IP:PORT" uses 0).
    options: Ceph ms_* options by name (see msgr.h), e.g.
    ``{"ms_async_op_threads": 2, "ms_tcp_nodelay": True}``; an unknown name or
    a bad value raises InvalidArgument. policies: ``{EntityType: Policy}``
    (EntityType.ANY for the default). pull: receive through recv/recv_batch
    (the Python API's only way to receive; False only for a send-only
    messenger). log: ``log(level, line)`` for the library's log lines up to
    the ``debug_ms`` option; it runs on library threads and must be quick.

    Every method is thread-safe. close() (or ``with``) destroys the
    messenger: a graceful shutdown bounded by ms_shutdown_timeout, then
    every Connection handle goes stale; received Messages stay valid.
    """

    #: The class of the Connection objects this messenger returns.
    connection_class: Type[Connection] = Connection

    def __init__(
        self,
        name: str = "client.?",
        nonce: Optional[int] = None,
        options: Optional[Mapping[str, OptionValue]] = None,
        *,
        policies: Optional[Mapping[int, Policy]] = None,
        pull: bool = True,
        log: Optional[Callable[[int, str], None]] = None,
    ) -> None:
        self._id = 0
        self._lock = threading.Lock()
        self._conns: Dict[int, Connection] = {}
        self._owned: "weakref.WeakSet[Connection]" = weakref.WeakSet()
        self._dispatchers: Tuple[Dispatcher, ...] = ()
        self._pending: Deque[Item] = collections.deque()
        self._started = False
        self._pull = bool(pull)
        self._fd: Optional[int] = None
        self._log_cb: Any = None
        self._fast: Any = None  # set_fast_dispatch's callback, kept alive
        bname = _cstr("name", name)
        if nonce is None:
            nonce = random.SystemRandom().getrandbits(32) or 1
        if not isinstance(nonce, int):
            raise TypeError(f"nonce must be an int, not {type(nonce).__name__}")
        if not 0 <= nonce <= 0xFFFFFFFF:
            raise InvalidArgument(detail=f"nonce {nonce} is out of range 0..2^32-1")
        opts = [_option_text(k, v) for k, v in (options or {}).items()]
        arr = (_lib.msgr_option * max(1, len(opts)))()
        for i, (k, v) in enumerate(opts):
            arr[i].name = k
            arr[i].value = v
        cfg = _lib.msgr_messenger_config()
        cfg.size = sizeof(cfg)
        cfg.name = bname
        cfg.nonce = nonce
        cfg.options = arr
        cfg.noptions = len(opts)
        if log is not None:
            if not callable(log):
                raise TypeError("log must be callable(level, line)")

            def _log(user: Any, m: int, level: int, line: Optional[bytes]) -> None:
                try:
                    log(level, (line or b"").decode(errors="replace"))
                except Exception:  # never unwind into the library
                    pass

            self._log_cb = _lib.msgr_log_fn(_log)
            cfg.log = self._log_cb
        out = c_uint64()
        rc = lib.msgr_messenger_create(byref(out), byref(cfg))
        if rc:
            raise from_code(rc)
        self._id = out.value
        try:
            for t, p in (policies or {}).items():
                self.set_policy(t, p)
            if self._pull:
                rc = lib.msgr_messenger_add_pull(self._id, TAIL)
                if rc:
                    raise from_code(rc)
        except BaseException:
            self.close()
            raise

    # --- lifetime -----------------------------------------------------------

    @property
    def id(self) -> int:
        """The handle (msgr_messenger.id); 0 once closed."""
        return self._id

    @property
    def closed(self) -> bool:
        return not self._id

    def _mid(self) -> int:
        mid = self._id
        if not mid:
            raise BadHandle(detail="messenger is closed")
        return mid

    def close(self) -> None:
        """Destroys the messenger (msgr_messenger_destroy): shuts it down if
        it runs, waits for its threads, and makes its connection handles
        stale. Idempotent. Received messages stay valid."""
        with self._lock:
            mid = self._id
            if not mid:
                return
            rc = lib.msgr_messenger_destroy(mid)
            if rc and rc != _lib.EBADF:
                raise from_code(rc)
            self._id = 0
            for c in list(self._owned):
                c._stale()
            self._owned = weakref.WeakSet()
            self._conns.clear()
            self._pending.clear()
            self._log_cb = None
            self._fast = None

    def __del__(self) -> None:
        if getattr(self, "_id", 0):
            warnings.warn(f"unclosed {self!r}", ResourceWarning, stacklevel=1)
            try:
                self.close()
            except Exception:  # pragma: no cover - interpreter shutdown
                pass

    def __enter__(self) -> "Messenger":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Starts the workers and, if bound, accepting."""
        rc = lib.msgr_messenger_start(self._mid())
        if rc:
            raise from_code(rc)
        self._started = True

    def shutdown(self) -> None:
        """Graceful shutdown (bounded by ms_shutdown_timeout); wakes
        receivers, which then get MessengerShutdown once the queue is
        empty. Idempotent; close() still frees the messenger."""
        rc = lib.msgr_messenger_shutdown(self._mid())
        if rc:
            raise from_code(rc)

    def wait(self) -> None:
        """Blocks until the messenger has shut down (from any thread)."""
        rc = lib.msgr_messenger_wait(self._mid())
        if rc:
            raise from_code(rc)

    # --- configuration --------------------------------------------------------

    def set_policy(self, peer_type: int, policy: Policy) -> None:
        """The policy for peers of type peer_type (EntityType.ANY: every
        other type). Before start()."""
        if not isinstance(policy, Policy):
            raise TypeError(f"policy must be a msgr.Policy, not {type(policy).__name__}")
        if not isinstance(peer_type, int):
            raise TypeError(f"peer_type must be an EntityType, not {type(peer_type).__name__}")
        p = policy._to_c()
        rc = lib.msgr_messenger_set_policy(self._mid(), int(peer_type), byref(p))
        if rc:
            raise from_code(rc)

    def bind(self, addr: str) -> None:
        """Binds to "IP:PORT", "[::1]:PORT" or "v2:IP:PORT/NONCE" (port 0
        picks one; read it back from addrs). Before start()."""
        rc = lib.msgr_messenger_bind(self._mid(), _cstr("address", addr))
        if rc:
            raise from_code(rc)

    def bind_range(self, addr: str, min_port: int, max_port: int) -> None:
        """Binds to the first free port in [min_port, max_port] of addr's IP."""
        for v in (min_port, max_port):
            if not isinstance(v, int):
                raise TypeError("ports must be ints")
            if not 0 <= v <= 65535:
                raise InvalidArgument(detail=f"port {v} is out of range")
        rc = lib.msgr_messenger_bind_range(self._mid(), _cstr("address", addr), min_port, max_port)
        if rc:
            raise from_code(rc)

    def _text(self, fn: Any) -> str:
        mid = self._mid()
        size = 256
        while True:
            buf = ctypes.create_string_buffer(size)
            rc = fn(mid, buf, size)
            if rc == _lib.ERANGE and size < 1 << 20:
                size *= 4
                continue
            if rc:
                raise from_code(rc)
            return buf.value.decode(errors="replace")

    @property
    def addrs(self) -> str:
        """The bound addresses, Ceph-style ("v2:127.0.0.1:41234/0"); "" if
        not bound."""
        return self._text(lib.msgr_messenger_get_addrs)

    @property
    def name(self) -> str:
        return self._text(lib.msgr_messenger_get_name)

    def perf_dump(self) -> Dict[str, Any]:
        """The messenger's counters (msgr_messenger_perf_dump), parsed."""
        p = c_void_p()
        rc = lib.msgr_messenger_perf_dump(self._mid(), byref(p))
        if rc:
            raise from_code(rc)
        try:
            text = ctypes.string_at(p.value) if p.value else b"{}"
        finally:
            lib.msgr_free(p)
        d: Dict[str, Any] = json.loads(text)
        return d

    # --- connections ----------------------------------------------------------

    def connect(self, addr: str, peer_type: int = EntityType.OSD) -> Connection:
        """A connection to the peer at addr (one address or an address vector
        "[v2:...,v1:...]") of entity type peer_type; the handshake runs in
        the background (a CONNECT event when it is up; messages sent before
        are queued). The returned object holds a reference: close() it (or
        use ``with``). After start()."""
        if not isinstance(peer_type, int):
            raise TypeError(f"peer_type must be an EntityType, not {type(peer_type).__name__}")
        out = c_uint64()
        rc = lib.msgr_messenger_connect(self._mid(), int(peer_type), _cstr("address", addr), byref(out))
        if rc:
            raise from_code(rc)
        c = self.connection_class._wrap(out.value, True, self)
        self._owned.add(c)
        return c

    def _conn(self, cid: int) -> Connection:
        """The (borrowed) Connection object for a handle id, cached."""
        c = self._conns.get(cid)
        if c is None:
            if len(self._conns) >= _CONN_CACHE_MAX:
                self._conns.clear()
            c = self._conns[cid] = self.connection_class._wrap(cid, False, self)
        return c

    def _forget_conn(self, c: Connection) -> None:
        self._owned.discard(c)

    def _uncache(self, cid: int) -> None:
        self._conns.pop(cid, None)

    # --- receiving --------------------------------------------------------------

    def fileno(self) -> int:
        """A descriptor that is readable while recv has something for you
        (or the messenger is shut down); for select/poll/selectors/asyncio.
        Level-triggered: it stays readable until recv took everything. Do not
        read, write or close it."""
        if self._fd is None:
            fd = c_int(-1)
            rc = lib.msgr_messenger_event_fd(self._mid(), byref(fd))
            if rc:
                raise from_code(rc)
            self._fd = fd.value
        self._mid()
        return self._fd

    def _pull_raw(self, n: int, timeout: Optional[float]) -> int:
        """msgr_messenger_recv into this thread's event array; returns the
        count or a negative code (ETIMEDOUT / EAGAIN are returned, others
        raised)."""
        mid = self._mid()
        ev = _ev
        if n > ev.cap:
            ev.grow(n)
        ms = _timeout_ms(timeout)
        if 0 <= ms <= _WAIT_SLICE_MS:
            rc = _recv(mid, ev.addr, n, _EVSZ, ms)
        else:
            deadline = None if ms < 0 else time.monotonic() + ms / 1000.0
            while True:
                if deadline is None:
                    slice_ms = _WAIT_SLICE_MS
                else:
                    left = deadline - time.monotonic()
                    slice_ms = max(0, min(_WAIT_SLICE_MS, int(left * 1000) + 1))
                rc = _recv(mid, ev.addr, n, _EVSZ, slice_ms)
                if rc != _ETIMEDOUT and rc != _EAGAIN:
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    rc = _ETIMEDOUT
                    break
                mid = self._mid()  # closed meanwhile?
        if rc >= 0 or rc == _ETIMEDOUT or rc == _EAGAIN:
            return int(rc)
        if rc == _lib.EBADF and not self._id:
            raise BadHandle(detail="messenger is closed")
        raise from_code(rc)

    def _items(self, n: int) -> List[Item]:
        """Wraps the n events in this thread's array."""
        ev = _ev
        types = ev.i[0 : 8 * n : 8].tolist()
        cids = ev.q[1 : 4 * n : 4].tolist()
        ptrs = ev.q[3 : 4 * n : 4].tolist()
        conns = self._conns
        out: List[Item] = []
        append = out.append
        last_cid = 0
        c: Connection = None  # type: ignore[assignment]
        for t, cid, p in zip(types, cids, ptrs):
            if cid != last_cid:  # consecutive items mostly share a connection
                c = conns.get(cid)  # type: ignore[assignment]
                if c is None:
                    c = self._conn(cid)
                last_cid = cid
            if t == 1:
                m = _new(Message)
                m._p = p
                m._own = None
                m._views = None
                m.conn = c
                append(m)
            else:
                if p:  # only MESSAGE events carry one; never leak it
                    lib.msgr_msg_put(p)
                try:
                    et = EventType(t)
                except ValueError:  # an event type added by a later library
                    et = t
                if t == 4:  # RESET: the session is gone; do not cache its handle
                    conns.pop(cid, None)
                    last_cid = 0
                append(Event(et, c))
        return out

    def recv(self, timeout: Optional[float] = None) -> Item:
        """The next message (a Message, with .conn) or connection event (an
        Event). Waits up to timeout seconds (None: forever; 0: not at all).
        Raises Timeout when the time runs out, WouldBlock if timeout is 0 and
        nothing is queued, MessengerShutdown once shut down and drained."""
        if self._pending:
            try:
                return self._pending.popleft()
            except IndexError:
                pass
        rc = self._pull_raw(1, timeout)
        if rc > 0:
            return self._items(1)[0]
        if rc == _EAGAIN:
            raise WouldBlock(detail="nothing to receive")
        raise Timeout(detail="nothing received in time")

    def recv_batch(self, max_n: int = 256, timeout: Optional[float] = None) -> List[Item]:
        """Up to max_n messages and events in one call: waits up to timeout
        for the first (None: forever; 0: not at all), never for more, and
        returns what is queued then. [] if the time ran out (or nothing was
        queued with timeout 0); MessengerShutdown once shut down and drained.
        Items come in arrival order (per connection)."""
        if not isinstance(max_n, int):
            raise TypeError(f"max_n must be an int, not {type(max_n).__name__}")
        if max_n < 1:
            raise InvalidArgument(detail=f"max_n must be >= 1, not {max_n}")
        pending = self._pending
        if pending:
            out: List[Item] = []
            try:
                while pending and len(out) < max_n:
                    out.append(pending.popleft())
            except IndexError:
                pass
            if out:
                return out
        rc = self._pull_raw(max_n, timeout)
        if rc > 0:
            return self._items(rc)
        return []

    def recv_copy(self, max_n: int = 256, timeout: Optional[float] = None) -> List[CopiedItem]:
        """recv_batch for many small messages: each message comes as a
        Received (header fields, segments as bytes copied in one block by
        the library, nothing to close), events as Event. Same waiting, order
        and return values as recv_batch ([] when the time ran out). A message
        larger than this thread's 1 MiB buffer is received through recv and
        copied the same way. Several times faster per message than
        recv_batch: no Message objects, no call into the library per
        message."""
        if not isinstance(max_n, int):
            raise TypeError(f"max_n must be an int, not {type(max_n).__name__}")
        if max_n < 1:
            raise InvalidArgument(detail=f"max_n must be >= 1, not {max_n}")
        if self._pending:
            return [self._copied(it) for it in self.recv_batch(max_n, 0)]
        rx = _rx
        if max_n > rx.cap:
            rx.grow(max_n)
        mid = self._mid()
        ms = _timeout_ms(timeout)
        deadline = None if ms < 0 else time.monotonic() + ms / 1000.0
        while True:
            slice_ms = ms
            if ms < 0 or ms > _WAIT_SLICE_MS:
                left = _WAIT_SLICE_MS if deadline is None else int((deadline - time.monotonic()) * 1000) + 1
                slice_ms = max(0, min(_WAIT_SLICE_MS, left))
            rc = _recv_copy(mid, rx.addr, max_n, _RXSZ, rx.baddr, rx.bufsize, rx.pused, slice_ms)
            if rc > 0:
                used = rx.used.value
                return self._rx_items(rc, rx.views, _string_at(rx.baddr, used) if used else b"")
            if rc == _ERANGE:
                # Larger than the buffer: take it as a Message.
                it = self.recv(0)
                return [self._copied(it)]
            if rc != _ETIMEDOUT and rc != _EAGAIN:
                if rc == _lib.EBADF and not self._id:
                    raise BadHandle(detail="messenger is closed")
                raise from_code(rc)
            if ms == 0 or (deadline is not None and time.monotonic() >= deadline):
                return []
            mid = self._mid()  # closed meanwhile?

    def _copied(self, it: Item) -> CopiedItem:
        if not isinstance(it, Message):
            return it
        m = it
        h = m.header()
        r = Received(
            m.conn,  # type: ignore[arg-type]
            h.type,
            m.tobytes(2),
            m.tobytes(0),
            m.tobytes(1),
            h.tid,
            h.priority,
            h.seq,
        )
        m.close()
        return r

    def _rx_columns(self, n: int, rx: _RxViews, blob: bytes) -> Tuple[List[Any], ...]:
        """The n msgr_rxmsg items of rx (payloads in blob) by column:
        item types, connection ids, message types, datas, fronts, middles,
        tids, priorities, seqs."""
        w = _RXW
        types = rx.i[0 : 2 * w * n : 2 * w].tolist()
        cids = rx.q[1 : w * n : w].tolist()
        # Segment lengths, then each message's bytes cut from the one copy.
        fl = rx.u[16 : 2 * w * n : 2 * w].tolist()
        ml = rx.u[17 : 2 * w * n : 2 * w].tolist()
        dl = rx.u[18 : 2 * w * n : 2 * w].tolist()
        offs = rx.q[7 : w * n : w].tolist()
        if 1 in types and not any(fl) and not any(ml):
            # The common case: data segments only.
            datas = [blob[o : o + k] for o, k in zip(offs, dl)]
            fronts = middles = [b""] * n
        else:
            fronts = [blob[o : o + k] for o, k in zip(offs, fl)]
            middles = [blob[o + f : o + f + k] for o, f, k in zip(offs, fl, ml)]
            datas = [blob[o + f + m : o + f + m + k] for o, f, m, k in zip(offs, fl, ml, dl)]
        mtypes = rx.h[2 : 4 * w * n : 4 * w].tolist()
        prios = rx.h[3 : 4 * w * n : 4 * w].tolist()
        tids = rx.q[3 : w * n : w].tolist()
        seqs = rx.q[4 : w * n : w].tolist()
        return types, cids, mtypes, datas, fronts, middles, tids, prios, seqs

    def _rx_items(self, n: int, rx: _RxViews, blob: bytes) -> List[CopiedItem]:
        """Wraps n msgr_rxmsg items (rx) whose payloads are in blob."""
        types, cids, mtypes, datas, fronts, middles, tids, prios, seqs = self._rx_columns(n, rx, blob)
        conns = self._conns
        if types.count(1) == n and cids.count(cids[0]) == n:
            # The common case: messages only, one connection. The tuples
            # are made by C loops (map over zip), no Python code per item.
            c0 = conns.get(cids[0])
            if c0 is None:
                c0 = self._conn(cids[0])
            return list(
                map(
                    _tuple_new,
                    repeat(Received, n),
                    zip(repeat(c0, n), mtypes, datas, fronts, middles, tids, prios, seqs),
                )
            )
        out: List[CopiedItem] = []
        append = out.append
        last_cid = 0
        c = self._conn(cids[0])
        for k in range(n):
            cid = cids[k]
            if cid != last_cid:
                cc = conns.get(cid)
                c = cc if cc is not None else self._conn(cid)
                last_cid = cid
            t = types[k]
            if t == 1:
                append(_tuple_new(Received, (c, mtypes[k], datas[k], fronts[k], middles[k], tids[k], prios[k], seqs[k])))
                continue
            try:
                et = EventType(t)
            except ValueError:  # an event type added by a later library
                et = t
            if t == 4:  # RESET: the session is gone; do not cache its handle
                conns.pop(cid, None)
                last_cid = 0
            append(Event(et, c))
        return out

    def set_fast_dispatch(self, fn: Callable[[ReadBatch], None]) -> None:
        """Ceph's fast dispatch, a read at a time: fn(batch) is called on the
        library's worker thread with the messages one read of a connection
        brought (a ReadBatch: a sequence of Received, in order, all of one
        connection, with the same data by column), as they arrive. No hop to another thread: the lowest latency this
        package offers (a ping-pong answered from fn needs no wake-up of
        your thread), and one call per read, not per message.

        Every message goes to fn; connection events still come through
        recv / recv_batch / dispatch_once. fn runs holding the GIL on a
        library thread: keep it short (the worker serves its other
        connections meanwhile); it may send (send_copy, send...) but not
        wait (wait_held, recv with a timeout raise Deadlock). An exception
        raised by fn is reported through sys.unraisablehook and the batch
        is dropped. Before start(); once."""
        if not callable(fn):
            raise TypeError("fn must be callable")
        mid = self._mid()
        if self._fast is not None:
            raise WrongState(detail="set_fast_dispatch was already called")
        rxsz = _RXSZ

        def _cb(user: Any, cid: int, rxp: int, n: int, bufp: int) -> None:
            _pin_thread_state()
            raw = memoryview((ctypes.c_char * (n * rxsz)).from_address(rxp)).cast("B")
            views = _RxViews(raw)
            last = n - 1
            u = views.u
            end = views.q[last * _RXW + 7] + u[last * 2 * _RXW + 16] + u[last * 2 * _RXW + 17] + u[last * 2 * _RXW + 18]
            _, cids, mtypes, datas, fronts, middles, tids, prios, seqs = self._rx_columns(
                n, views, _string_at(bufp, end) if end else b""
            )
            c = self._conns.get(cids[0])
            if c is None:
                c = self._conn(cids[0])
            fn(ReadBatch(c, mtypes, datas, tids, fronts, middles, prios, seqs))

        cb = _lib._fast_copy_fn(_cb)
        ops = _lib.msgr_dispatcher_ops(
            size=sizeof(_lib.msgr_dispatcher_ops),
            flags=_lib.DISPATCH_F_FAST_ALL,
            fast_dispatch_copy=cb,
        )
        rc = lib.msgr_messenger_add_dispatcher(mid, byref(ops), None, HEAD)
        if rc:
            raise from_code(rc)
        self._fast = (cb, ops, fn)  # the C side calls cb until destroy

    def __iter__(self) -> Iterator[Item]:
        """Iterates over everything received until the messenger shuts down."""
        while True:
            try:
                yield self.recv()
            except MessengerShutdown:
                return

    # --- dispatchers --------------------------------------------------------------

    def add_dispatcher(self, d: Dispatcher, where: int = TAIL) -> None:
        """Adds d to the chain that dispatch_once/run call (HEAD: asked first)."""
        if not isinstance(d, Dispatcher):
            raise TypeError(f"expected a msgr.Dispatcher, not {type(d).__name__}")
        if where not in (HEAD, TAIL):
            raise InvalidArgument(detail=f"where must be HEAD (0) or TAIL (1), not {where!r}")
        self._mid()
        with self._lock:
            self._dispatchers = (d,) + self._dispatchers if where == HEAD else self._dispatchers + (d,)

    def remove_dispatcher(self, d: Dispatcher) -> None:
        with self._lock:
            self._dispatchers = tuple(x for x in self._dispatchers if x is not d)

    @property
    def dispatchers(self) -> Tuple[Dispatcher, ...]:
        return self._dispatchers

    def deliver(self, items: List[Item]) -> None:
        """Hands received items to the dispatchers, in order (what
        dispatch_once does after receiving). If a dispatcher raises, the
        items after the failing one are kept for the next call."""
        ds = self._dispatchers
        if not ds:
            raise WrongState(detail="no dispatcher added (add_dispatcher)")
        one = ds[0] if len(ds) == 1 else None
        for i, it in enumerate(items):
            try:
                if it.__class__ is Message:
                    if one is not None:
                        one.dispatch(it.conn, it)  # type: ignore[arg-type]
                    else:
                        for d in ds:
                            if d.dispatch(it.conn, it):  # type: ignore[arg-type]
                                break
                else:
                    _deliver_event(ds, it)  # type: ignore[arg-type]
            except BaseException:
                self._pending.extend(items[i + 1 :])
                raise

    def dispatch_once(self, timeout: Optional[float] = 0.0, max_n: int = 256) -> int:
        """Receives one batch (waiting up to timeout for its first item) and
        delivers it to the dispatchers on this thread; returns how many
        items were delivered (0 if none came in time)."""
        if not self._dispatchers:
            raise WrongState(detail="no dispatcher added (add_dispatcher)")
        items = self.recv_batch(max_n, timeout)
        if items:
            self.deliver(items)
        return len(items)

    def run(
        self,
        stop: Union[threading.Event, Callable[[], bool], None] = None,
        *,
        max_n: int = 256,
        poll_interval: float = 0.2,
    ) -> None:
        """Dispatches until the messenger shuts down (returns then), or until
        stop (a threading.Event or a callable) says so, checked at least
        every poll_interval seconds."""
        if stop is None:
            should_stop: Callable[[], bool] = lambda: False  # noqa: E731
        elif isinstance(stop, threading.Event):
            should_stop = stop.is_set
        elif callable(stop):
            should_stop = stop
        else:
            raise TypeError("stop must be a threading.Event, a callable or None")
        while not should_stop():
            try:
                self.dispatch_once(poll_interval, max_n)
            except MessengerShutdown:
                return

    def __repr__(self) -> str:
        if not self._id:
            return "<msgr.Messenger closed>"
        try:
            return f"<msgr.Messenger {self.name} {self.addrs or 'unbound'}>"
        except Exception:
            return f"<msgr.Messenger id={self._id:#x}>"


def _deliver_event(ds: Tuple[Dispatcher, ...], ev: Event) -> None:
    t, c = ev.type, ev.conn
    if t == EventType.CONNECT:
        for d in ds:
            d.handle_connect(c)
    elif t == EventType.ACCEPT:
        for d in ds:
            d.handle_accept(c)
    elif t == EventType.RESET:
        for d in ds:
            if d.handle_reset(c):
                break
    elif t == EventType.REMOTE_RESET:
        for d in ds:
            d.handle_remote_reset(c)
    elif t == EventType.REFUSED:
        for d in ds:
            if d.handle_refused(c):
                break


def live_counts() -> Dict[str, int]:
    """Objects alive in this process (msgr_live_counts_get): messengers,
    conns (handles not yet stale), msgs, dispatchers. For leak checks."""
    return _lib.live_counts()


__all__ = ["Messenger", "Item", "live_counts"]
