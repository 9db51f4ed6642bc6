"""Exceptions: every failure of the C library is raised as a subclass of
:class:`Error` carrying the C code (``MSGR_E*``), its ``msgr_strerror`` text,
and the library's detail for the failed call (``msgr_last_error``)."""

from __future__ import annotations

from typing import Dict, Optional, Type

from . import _lib


class Error(Exception):
    """A failure reported by libmsgr (or found by the binding before the
    call, with the code the library would have given).

    Attributes: ``code`` (negative ``MSGR_E*`` value), ``name``
    (``"MSGR_EINVAL"``), ``strerror`` (``msgr_strerror(code)``) and ``detail``
    (what exactly failed, e.g. ``unknown option "ms_foo"``)."""

    code: int = 0

    def __init__(self, code: Optional[int] = None, detail: str = "") -> None:
        if code is None:
            code = type(self).code
        self.code = code
        self.name = _lib.err_name(code)
        self.strerror = _lib.strerror(code)
        self.detail = detail
        super().__init__(self._text())

    def _text(self) -> str:
        if self.detail and self.detail != self.strerror:
            return f"{self.detail} [{self.name}: {self.strerror}]"
        return f"{self.strerror} [{self.name}]"

    def __reduce__(self) -> "tuple[type, tuple[int, str]]":  # pickles as (class, (code, detail))
        return (type(self), (self.code, self.detail))


class InvalidArgument(Error, ValueError):
    """MSGR_EINVAL: a bad value (unknown option, bad address, bad entity
    name or type...)."""

    code = _lib.EINVAL


class NotConnected(Error):
    """MSGR_ENOTCONN: the connection is closed (marked down, reset)."""

    code = _lib.ENOTCONN


class ConnectionRefused(Error):
    """MSGR_ECONNREFUSED."""

    code = _lib.ECONNREFUSED


class Timeout(Error):
    """MSGR_ETIMEDOUT: nothing arrived within the timeout."""

    code = _lib.ETIMEDOUT


class MessageTooLarge(Error, ValueError):
    """MSGR_EMSGSIZE: a segment longer than MSGR_SEGMENT_MAX (4 GiB - 1)."""

    code = _lib.EMSGSIZE


class MessengerShutdown(Error):
    """MSGR_ESHUTDOWN: the messenger is shut down (and its queue is empty)."""

    code = _lib.ESHUTDOWN


class BadHandle(Error):
    """MSGR_EBADF: the handle is closed (by close(), or its messenger was
    destroyed) or unknown. Raised by every call on a closed Messenger,
    Connection or Message, and by a segment view used after its message
    was closed or sent (see Message)."""

    code = _lib.EBADF


class WouldBlock(Error):
    """MSGR_EAGAIN: nothing to receive and timeout=0."""

    code = _lib.EAGAIN


class OutOfMemory(Error):
    code = _lib.ENOMEM


class ProtocolError(Error):
    """A msgr2 protocol failure (bad banner, crc, features, framing)."""

    code = -21


class AuthError(ProtocolError):
    """MSGR_EAUTH: the peer refused authentication."""

    code = -12


class BufferTooSmall(Error):
    code = _lib.ERANGE


class WrongState(Error):
    """MSGR_ESTATE: the call is not allowed in the object's state (bind
    after start, a setter on a shared or sent message...)."""

    code = _lib.ESTATE


class Deadlock(Error):
    code = _lib.EDEADLK


class ForkedChild(Error):
    """MSGR_EFORK: the library's threads do not survive fork()."""

    code = _lib.EFORK


class InternalError(Error):
    code = -18


class NotSupported(Error):
    code = -19


class AddressInUse(Error):
    code = _lib.EADDRINUSE


class IOFailure(Error):
    code = -22


_BY_CODE: Dict[int, Type[Error]] = {
    -1: InvalidArgument,
    -2: NotConnected,
    -3: ConnectionRefused,
    -4: Timeout,
    -5: MessageTooLarge,
    -6: MessengerShutdown,
    -7: BadHandle,
    -8: WouldBlock,
    -9: OutOfMemory,
    -10: ProtocolError,
    -11: ProtocolError,
    -12: AuthError,
    -13: ProtocolError,
    -14: BufferTooSmall,
    -15: WrongState,
    -16: Deadlock,
    -17: ForkedChild,
    -18: InternalError,
    -19: NotSupported,
    -20: AddressInUse,
    -21: ProtocolError,
    -22: IOFailure,
}


def error_class(code: int) -> Type[Error]:
    """The exception class raised for a C code (Error for unknown codes)."""
    return _BY_CODE.get(code, Error)


def from_code(code: int, detail: Optional[str] = None) -> Error:
    """The exception for a failed call, with the calling thread's
    msgr_last_error text as detail (call it right after the failure, on
    the same thread)."""
    if detail is None:
        detail = _lib.last_error()
    return error_class(code)(code, detail)


def check(rc: int) -> int:
    """Raises the exception for rc if it is negative; returns rc."""
    if rc < 0:
        raise from_code(rc)
    return rc


__all__ = [
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
    "error_class",
    "from_code",
    "check",
]
