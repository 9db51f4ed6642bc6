"""asyncio layer: receive with ``await``, built on the messenger's event fd
(``loop.add_reader``), so waiting costs no thread.

::

    import asyncio, msgr, msgr.aio

    async def serve():
        async with msgr.aio.Messenger("osd.0", nonce=0) as srv:
            srv.bind("127.0.0.1:0")
            srv.start()
            async for msg in srv:              # messages (events: recv())
                await msg.conn.send(msg)       # echo

A msgr.aio.Messenger wraps a msgr.Messenger (``.sync``); its connections
(from ``connect`` and on received messages) are msgr.aio.Connection objects,
whose ``send`` / ``send_copy`` are coroutines that return once the message
is queued and the connection's queue is below ``high_water`` (flow control:
the library's own send never blocks). One messenger belongs to one event
loop at a time.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any, AsyncIterator, Deque, List, Optional

from . import connection as _connection
from . import messenger as _messenger
from .constants import EntityType
from .dispatcher import Dispatcher
from .errors import BadHandle, MessengerShutdown
from .message import Buffer, Message
from .policy import Policy

Item = _messenger.Item


class Connection(_connection.Connection):
    """A connection whose sends are awaitable (see the module doc).
    ``send_nowait`` / ``send_copy_nowait`` are the plain, synchronous ones."""

    __slots__ = ()

    #: Above this many queued messages a send waits until the queue is down
    #: to low_water.
    high_water = 4096
    low_water = 1024

    send_nowait = _connection.Connection.send
    send_copy_nowait = _connection.Connection.send_copy

    async def send(self, msg: Message) -> None:  # type: ignore[override]
        """Queues msg (the library takes it), then waits while the
        connection's queue is above high_water."""
        _connection.Connection.send(self, msg)
        if self.queued > self.high_water:
            await self.drain()

    async def send_copy(  # type: ignore[override]
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
        _connection.Connection.send_copy(
            self,
            type,
            data,
            front=front,
            middle=middle,
            tid=tid,
            priority=priority,
            version=version,
            compat_version=compat_version,
        )
        if self.queued > self.high_water:
            await self.drain()

    async def drain(self) -> None:
        """Waits until at most low_water messages are queued (polled, with
        a growing pause of up to 10 ms)."""
        pause = 0.0005
        while self.queued > self.low_water:
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.01)


class _SyncMessenger(_messenger.Messenger):
    connection_class = Connection


class Messenger:
    """The asyncio face of a msgr.Messenger; the constructor takes the same
    arguments. Everything not awaitable is forwarded to ``.sync``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.sync: _messenger.Messenger = _SyncMessenger(*args, **kwargs)
        self._buf: Deque[Item] = collections.deque()
        self._waiters: List["asyncio.Future[None]"] = []
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._reading = False

    # --- forwarded -------------------------------------------------------------

    def bind(self, addr: str) -> None:
        self.sync.bind(addr)

    def bind_range(self, addr: str, min_port: int, max_port: int) -> None:
        self.sync.bind_range(addr, min_port, max_port)

    def set_policy(self, peer_type: int, policy: Policy) -> None:
        self.sync.set_policy(peer_type, policy)

    def start(self) -> None:
        self.sync.start()

    def shutdown(self) -> None:
        self.sync.shutdown()

    def connect(self, addr: str, peer_type: int = EntityType.OSD) -> Connection:
        return self.sync.connect(addr, peer_type)  # type: ignore[return-value]

    def add_dispatcher(self, d: Dispatcher, where: int = 1) -> None:
        self.sync.add_dispatcher(d, where)

    def fileno(self) -> int:
        return self.sync.fileno()

    def perf_dump(self) -> "dict[str, Any]":
        return self.sync.perf_dump()

    @property
    def addrs(self) -> str:
        return self.sync.addrs

    @property
    def name(self) -> str:
        return self.sync.name

    @property
    def closed(self) -> bool:
        return self.sync.closed

    # --- lifetime -----------------------------------------------------------------

    def _stop_reading(self) -> None:
        if self._reading and self._loop is not None:
            try:
                self._loop.remove_reader(self.sync.fileno())
            except Exception:
                pass
            self._reading = False

    def close(self) -> None:
        """Destroys the messenger; coroutines waiting in recv get BadHandle."""
        if self.sync.closed:
            return
        self._stop_reading()
        waiters, self._waiters = self._waiters, []
        for f in waiters:
            if not f.done():
                f.set_exception(BadHandle(detail="messenger closed while waiting"))
        self._buf.clear()
        self.sync.close()

    async def aclose(self) -> None:
        """close() in a worker thread (destroy waits up to
        ms_shutdown_timeout for queued output), so the loop keeps running."""
        if self.sync.closed:
            return
        self._stop_reading()
        waiters, self._waiters = self._waiters, []
        for f in waiters:
            if not f.done():
                f.set_exception(BadHandle(detail="messenger closed while waiting"))
        self._buf.clear()
        await asyncio.get_running_loop().run_in_executor(None, self.sync.close)

    async def __aenter__(self) -> "Messenger":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __enter__(self) -> "Messenger":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- receiving ------------------------------------------------------------------

    def _on_readable(self) -> None:
        # One wake-up per readiness: the waiters take what is queued; the
        # reader is added again by the next one that finds nothing.
        self._stop_reading()
        waiters, self._waiters = self._waiters, []
        for f in waiters:
            if not f.done():
                f.set_result(None)

    async def _readable(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._stop_reading()
            self._loop = loop
        fut: "asyncio.Future[None]" = loop.create_future()
        self._waiters.append(fut)
        if not self._reading:
            loop.add_reader(self.sync.fileno(), self._on_readable)
            self._reading = True
        try:
            await fut
        finally:
            if fut in self._waiters:
                self._waiters.remove(fut)
            if not self._waiters:
                self._stop_reading()

    async def recv_batch(self, max_n: int = 256) -> List[Item]:
        """Up to max_n messages and events, waiting for the first.
        MessengerShutdown once shut down and drained."""
        while True:
            buf = self._buf
            if buf:
                out: List[Item] = []
                while buf and len(out) < max_n:
                    out.append(buf.popleft())
                return out
            items = self.sync.recv_batch(max_n, 0)
            if items:
                return items
            await self._readable()

    async def recv(self) -> Item:
        """The next message (Message, with .conn) or event (Event)."""
        while True:
            if self._buf:
                return self._buf.popleft()
            items = self.sync.recv_batch(256, 0)
            if items:
                self._buf.extend(items[1:])
                return items[0]
            await self._readable()

    async def recv_message(self) -> Message:
        """The next message, skipping events."""
        while True:
            it = await self.recv()
            if isinstance(it, Message):
                return it

    def __aiter__(self) -> AsyncIterator[Message]:
        return self._messages()

    async def _messages(self) -> AsyncIterator[Message]:
        """Every message until the messenger shuts down (events skipped:
        use recv() to see them)."""
        while True:
            try:
                it = await self.recv()
            except (MessengerShutdown, BadHandle):
                return
            if isinstance(it, Message):
                yield it

    async def run(self) -> None:
        """Delivers everything to the dispatchers (add_dispatcher) on the
        loop until the messenger shuts down or is closed."""
        while True:
            try:
                items = await self.recv_batch()
            except (MessengerShutdown, BadHandle):
                return
            self.sync.deliver(items)

    def __repr__(self) -> str:
        return f"<msgr.aio.Messenger {self.sync!r}>"


__all__ = ["Messenger", "Connection"]
