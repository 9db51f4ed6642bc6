"""Loads libmsgr.so and declares every C function of include/msgr.h.

This module is the only place that touches the shared library: each
function gets its ``argtypes`` and ``restype`` here, so no call goes through
ctypes' default (int) conversions. The rest of the package calls the
functions through the module-level :data:`lib` object.

Where the library comes from, in order (first found wins):

1. inside the package (``msgr/libmsgr.so.MAJOR``, put there by
   ``pip install`` / the wheel);
2. the file named by the environment variable ``MSGR_LIBRARY``;
3. the system's search path (``libmsgr.so.MAJOR``, then ``libmsgr.so``).

The library's major version (``msgr_version() >> 16``) must equal
:data:`MAJOR`, the ``MSGR_VERSION_MAJOR`` this binding was written for;
otherwise :class:`LibraryError` is raised at import.

Handles (``msgr_messenger``, ``msgr_conn``) are C structs holding one
``uint64_t`` passed by value. Every supported ABI (SysV x86-64, AArch64
AAPCS64, ppc64le ELFv2, s390x, Windows x64) passes such a struct exactly as a
``uint64_t``, so they are declared as ``c_uint64``: a call then costs no
Structure object.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    c_char,
    c_char_p,
    c_int,
    c_int32,
    c_int64,
    c_size_t,
    c_uint,
    c_uint8,
    c_uint16,
    c_uint32,
    c_uint64,
    c_void_p,
)
from typing import Any, List, Optional, Tuple

#: The MSGR_VERSION_MAJOR of include/msgr.h this binding is written for.
MAJOR = 0
#: The oldest MINOR of that major version this binding needs.
MIN_MINOR = 2

ENV_LIBRARY = "MSGR_LIBRARY"

# --- constants of msgr.h ----------------------------------------------------

#: (name, value, text) of every error code, as MSGR_ERRNO_MAP.
ERRNO_MAP = (
    ("EINVAL", -1, "invalid argument"),
    ("ENOTCONN", -2, "not connected"),
    ("ECONNREFUSED", -3, "connection refused"),
    ("ETIMEDOUT", -4, "timed out"),
    ("EMSGSIZE", -5, "message too large"),
    ("ESHUTDOWN", -6, "messenger shut down"),
    ("EBADF", -7, "bad handle (closed or unknown)"),
    ("EAGAIN", -8, "would block"),
    ("ENOMEM", -9, "out of memory"),
    ("EBANNER", -10, "protocol: bad banner"),
    ("EBADCRC", -11, "protocol: crc mismatch"),
    ("EAUTH", -12, "protocol: authentication refused"),
    ("EFEATURES", -13, "protocol: feature mismatch"),
    ("ERANGE", -14, "buffer too small"),
    ("ESTATE", -15, "wrong state for this call"),
    ("EDEADLK", -16, "call would deadlock (made from a callback)"),
    ("EFORK", -17, "library unusable in a forked child"),
    ("EINTERNAL", -18, "internal error"),
    ("ENOTSUP", -19, "not supported"),
    ("EADDRINUSE", -20, "address in use"),
    ("EPROTO", -21, "protocol error"),
    ("EIO", -22, "i/o error"),
)
OK = 0
EINVAL = -1
ENOTCONN = -2
ECONNREFUSED = -3
ETIMEDOUT = -4
EMSGSIZE = -5
ESHUTDOWN = -6
EBADF = -7
EAGAIN = -8
ENOMEM = -9
ERANGE = -14
ESTATE = -15
EDEADLK = -16
EFORK = -17
EADDRINUSE = -20

HEAD = 0
TAIL = 1

SEG_FRONT = 0
SEG_MIDDLE = 1
SEG_DATA = 2
SEGMENT_MAX = 0xFFFFFFFF

PRIO_LOW = 64
PRIO_DEFAULT = 127
PRIO_HIGH = 196
PRIO_HIGHEST = 255

DISPATCH_F_FAST_ALL = 0x1

# --- structs ----------------------------------------------------------------


class msgr_option(Structure):
    _fields_ = [("name", c_char_p), ("value", c_char_p)]


#: void (*msgr_log_fn)(void *user, msgr_messenger m, int level, const char *line)
msgr_log_fn = CFUNCTYPE(None, c_void_p, c_uint64, c_int, c_char_p)
#: void (*msgr_free_fn)(void *data, void *hint)
msgr_free_fn = CFUNCTYPE(None, c_void_p, c_void_p)


class msgr_messenger_config(Structure):
    _fields_ = [
        ("size", c_uint32),
        ("reserved0", c_uint32),
        ("name", c_char_p),
        ("nonce", c_uint32),
        ("reserved1", c_uint32),
        ("options", POINTER(msgr_option)),
        ("noptions", c_size_t),
        ("log", msgr_log_fn),
        ("log_user", c_void_p),
    ]


class msgr_policy(Structure):
    _fields_ = [
        ("size", c_uint32),
        ("flags", c_uint32),
        ("features_supported", c_uint64),
        ("features_required", c_uint64),
        ("throttle_bytes", c_uint64),
        ("throttle_messages", c_uint64),
    ]


class msgr_event(Structure):
    _fields_ = [
        ("type", c_int32),
        ("reserved", c_uint32),
        ("conn", c_uint64),  # msgr_conn
        ("conn_priv", c_void_p),
        ("msg", c_void_p),  # msgr_msg *
    ]


class msgr_rxmsg(Structure):
    _fields_ = [
        ("type", c_int32),
        ("msg_type", c_uint16),
        ("priority", c_uint16),
        ("conn", c_uint64),  # msgr_conn
        ("conn_priv", c_void_p),
        ("tid", c_uint64),
        ("seq", c_uint64),
        ("src_num", c_int64),
        ("version", c_uint16),
        ("compat_version", c_uint16),
        ("src_type", c_uint8),
        ("reserved0", c_uint8),
        ("data_off", c_uint16),
        ("off", c_uint64),
        ("front_len", c_uint32),
        ("middle_len", c_uint32),
        ("data_len", c_uint32),
        ("reserved1", c_uint32),
    ]


class msgr_outmsg(Structure):
    _fields_ = [
        ("type", c_uint16),
        ("priority", c_uint16),
        ("version", c_uint16),
        ("compat_version", c_uint16),
        ("tid", c_uint64),
        ("front", c_void_p),
        ("front_len", c_size_t),
        ("middle", c_void_p),
        ("middle_len", c_size_t),
        ("data", c_void_p),
        ("data_len", c_size_t),
    ]


class msgr_conn_info(Structure):
    _fields_ = [
        ("size", c_uint32),
        ("state", c_int32),
        ("features", c_uint64),
        ("peer_num", c_int64),
        ("peer_type", c_uint8),
        ("lossy", c_uint8),
        ("local", c_uint8),
        ("reserved", c_uint8 * 5),
        ("msgs_sent", c_uint64),
        ("msgs_recv", c_uint64),
        ("bytes_sent", c_uint64),
        ("bytes_recv", c_uint64),
        ("queued", c_uint64),
        ("unacked", c_uint64),  # since 0.2
        ("last_fault", c_int32),  # since 0.2
        ("faults", c_uint32),  # since 0.2
    ]


class msgr_msg_header(Structure):
    _fields_ = [
        ("size", c_uint32),
        ("type", c_uint16),
        ("priority", c_uint16),
        ("version", c_uint16),
        ("compat_version", c_uint16),
        ("src_type", c_uint8),
        ("reserved", c_uint8 * 3),
        ("seq", c_uint64),
        ("tid", c_uint64),
        ("src_num", c_int64),
        ("front_len", c_uint64),
        ("middle_len", c_uint64),
        ("data_len", c_uint64),
    ]


class msgr_live_counts(Structure):
    _fields_ = [
        ("size", c_uint32),
        ("reserved", c_uint32),
        ("messengers", c_uint64),
        ("conns", c_uint64),
        ("msgs", c_uint64),
        ("dispatchers", c_uint64),
    ]


_dispatch_fn = CFUNCTYPE(c_int, c_void_p, c_uint64, c_void_p)
_can_fast_fn = CFUNCTYPE(c_int, c_void_p, c_void_p)
_fast_fn = CFUNCTYPE(None, c_void_p, c_uint64, c_void_p)
_conn_fn = CFUNCTYPE(None, c_void_p, c_uint64)
_conn_int_fn = CFUNCTYPE(c_int, c_void_p, c_uint64)
_release_fn = CFUNCTYPE(None, c_void_p)
#: void (*fast_dispatch_copy)(void *user, msgr_conn conn, const msgr_rxmsg *rx,
#:                            size_t n, const unsigned char *buf)
_fast_copy_fn = CFUNCTYPE(None, c_void_p, c_uint64, c_void_p, c_size_t, c_void_p)


class msgr_dispatcher_ops(Structure):
    """Messenger.set_fast_dispatch fills fast_dispatch_copy (one callback
    per read); the other callbacks are declared for completeness."""

    _fields_ = [
        ("size", c_uint32),
        ("flags", c_uint32),
        ("dispatch", _dispatch_fn),
        ("can_fast_dispatch", _can_fast_fn),
        ("fast_dispatch", _fast_fn),
        ("handle_connect", _conn_fn),
        ("handle_accept", _conn_fn),
        ("handle_reset", _conn_int_fn),
        ("handle_remote_reset", _conn_fn),
        ("handle_refused", _conn_int_fn),
        ("release", _release_fn),
        ("fast_dispatch_copy", _fast_copy_fn),  # since 0.2
    ]


# Sizes the C side checks; a wrong one here would be an ABI bug.
assert ctypes.sizeof(msgr_event) == 32
assert ctypes.sizeof(msgr_outmsg) == 64
assert ctypes.sizeof(msgr_msg_header) == 64
assert ctypes.sizeof(msgr_conn_info) == 88
assert ctypes.sizeof(msgr_rxmsg) == 80
assert ctypes.sizeof(msgr_dispatcher_ops) == 88

# --- the function table -----------------------------------------------------

_u64 = c_uint64  # msgr_messenger / msgr_conn by value (see the module doc)
_vp = c_void_p  # msgr_msg * and other opaque pointers
_P = POINTER

#: name: (restype, argtypes, pure). Every MSGR_API function of msgr.h.
#: Out-parameters the binding fills on hot paths (segment pointers, message
#: pointers, the event array) are declared void* and passed as addresses
#: (an int converts several times faster than a byref()). "pure" marks the
#: functions that run only C code (never enter the Go runtime, never block,
#: never call back): they are called with the GIL held (ctypes.PyDLL), which
#: saves the GIL release/reacquire that every other call pays.
SIGNATURES = {
    "msgr_version": (c_uint, [], True),
    "msgr_version_string": (c_char_p, [], True),
    "msgr_strerror": (c_char_p, [c_int], True),
    "msgr_err_name": (c_char_p, [c_int], True),
    "msgr_last_error": (c_int, [_P(c_char), c_size_t], True),
    "msgr_free": (None, [_vp], True),
    "msgr_messenger_create": (c_int, [_P(c_uint64), _P(msgr_messenger_config)], False),
    "msgr_messenger_destroy": (c_int, [_u64], False),
    "msgr_policy_init": (c_int, [_P(msgr_policy), c_int, c_uint64], True),
    "msgr_messenger_set_policy": (c_int, [_u64, c_int, _P(msgr_policy)], False),
    "msgr_messenger_bind": (c_int, [_u64, c_char_p], False),
    "msgr_messenger_bind_range": (c_int, [_u64, c_char_p, c_int, c_int], False),
    "msgr_messenger_get_addrs": (c_int, [_u64, _P(c_char), c_size_t], False),
    "msgr_messenger_get_name": (c_int, [_u64, _P(c_char), c_size_t], False),
    "msgr_messenger_start": (c_int, [_u64], False),
    "msgr_messenger_wait": (c_int, [_u64], False),
    "msgr_messenger_shutdown": (c_int, [_u64], False),
    "msgr_messenger_add_dispatcher": (c_int, [_u64, _P(msgr_dispatcher_ops), _vp, c_int], False),
    "msgr_messenger_add_pull": (c_int, [_u64, c_int], False),
    # evs: msgr_event *
    "msgr_messenger_recv": (c_int, [_u64, _vp, c_size_t, c_size_t, c_int], False),
    # out: msgr_rxmsg *; buf: void *; buf_used: size_t *
    "msgr_messenger_recv_copy": (c_int, [_u64, _vp, c_size_t, c_size_t, _vp, c_size_t, _vp, c_int], False),
    "msgr_messenger_event_fd": (c_int, [_u64, _P(c_int)], False),
    "msgr_messenger_connect": (c_int, [_u64, c_int, c_char_p, _P(c_uint64)], False),
    "msgr_conn_get": (c_int, [_u64], False),
    "msgr_conn_put": (c_int, [_u64], False),
    "msgr_conn_send": (c_int, [_u64, _vp], False),
    # msgs: msgr_msg *const *; sent: size_t *
    "msgr_conn_send_many": (c_int, [_u64, _vp, c_size_t, _vp], False),
    # msgs: const msgr_outmsg *; sent: size_t *
    "msgr_conn_send_copy": (c_int, [_u64, _vp, c_size_t, c_size_t, _vp], False),
    "msgr_conn_wait_held": (c_int, [_u64, c_uint64, c_int], False),
    "msgr_conn_send_keepalive": (c_int, [_u64], False),
    "msgr_conn_mark_down": (c_int, [_u64], False),
    # info: msgr_conn_info *
    "msgr_conn_get_info": (c_int, [_u64, _vp], False),
    "msgr_conn_peer_addr": (c_int, [_u64, _P(c_char), c_size_t], False),
    "msgr_conn_peer_name": (c_int, [_u64, _P(c_char), c_size_t], False),
    "msgr_conn_last_fault": (c_int, [_u64, _P(c_char), c_size_t], False),
    "msgr_conn_set_priv": (c_int, [_u64, _vp], False),
    "msgr_conn_get_priv": (c_int, [_u64, _P(c_void_p)], False),
    # out: msgr_msg **
    "msgr_msg_alloc": (c_int, [_vp, c_uint16], True),
    "msgr_msg_ref": (c_int, [_vp], True),
    "msgr_msg_put": (c_int, [_vp], True),
    # out: msgr_msg **
    "msgr_msg_copy": (c_int, [_vp, _vp], True),
    "msgr_msg_set_priority": (c_int, [_vp, c_uint16], True),
    "msgr_msg_set_version": (c_int, [_vp, c_uint16, c_uint16], True),
    "msgr_msg_set_tid": (c_int, [_vp, c_uint64], True),
    "msgr_msg_set_segment": (c_int, [_vp, c_int, _vp, c_size_t], True),
    # buf: void **
    "msgr_msg_reserve_segment": (c_int, [_vp, c_int, c_size_t, _vp], True),
    # The free function may run on a library thread: not "pure".
    "msgr_msg_set_data_nocopy": (c_int, [_vp, _vp, c_size_t, msgr_free_fn, _vp], False),
    # h: msgr_msg_header *
    "msgr_msg_get_header": (c_int, [_vp, _vp], True),
    "msgr_msg_type": (c_uint16, [_vp], True),
    # data: const void **; len: size_t *
    "msgr_msg_get_segment": (c_int, [_vp, c_int, _vp, _vp], True),
    "msgr_messenger_perf_dump": (c_int, [_u64, _P(c_void_p)], False),
    "msgr_live_counts_get": (c_int, [_P(msgr_live_counts)], False),
}


class Library:
    """The declared functions: ``lib.msgr_x(...)``. Pure functions are bound
    from the PyDLL handle, the rest from the CDLL one."""

    def __init__(self, cdll: ctypes.CDLL, pydll: ctypes.PyDLL) -> None:
        for name, (restype, argtypes, pure) in SIGNATURES.items():
            fn = getattr(pydll if pure else cdll, name)
            fn.restype = restype
            fn.argtypes = argtypes
            setattr(self, name, fn)
        self._cdll = cdll
        self._pydll = pydll

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(f"{name} is not declared in msgr._lib.SIGNATURES")


class LibraryError(ImportError):
    """libmsgr.so could not be found or loaded, or has the wrong major
    version. The message lists every place that was tried."""


def _package_candidates() -> List[str]:
    here = os.path.dirname(os.path.abspath(__file__))
    return [os.path.join(here, f"libmsgr.so.{MAJOR}"), os.path.join(here, "libmsgr.so")]


def _system_candidates() -> List[str]:
    names = [f"libmsgr.so.{MAJOR}", "libmsgr.so"]
    found = ctypes.util.find_library("msgr")
    if found:
        names.append(found)
    return names


def _open(path: str) -> Library:
    # RTLD_LOCAL (the default): libmsgr's symbols stay out of the global
    # namespace, so two copies of the Go runtime cannot clash by name. The
    # second dlopen of the same file returns the same handle.
    cdll = ctypes.CDLL(path)
    try:
        return Library(cdll, ctypes.PyDLL(path))
    except AttributeError as e:
        raise LibraryError(f"{path} is not a complete libmsgr ({e})") from None


def load() -> "tuple[Library, str]":
    """Finds, loads and checks the library; returns it and its path."""
    tried: List[str] = []
    candidates: List[Tuple[str, bool]] = [(p, True) for p in _package_candidates()]
    env = os.environ.get(ENV_LIBRARY)
    if env:
        candidates.append((env, True))
    candidates += [(n, False) for n in _system_candidates()]
    for path, is_file in candidates:
        if is_file and not os.path.exists(path):
            tried.append(f"{path}: not there")
            continue
        try:
            dll = _open(path)
        except OSError as e:
            tried.append(f"{path}: {e}")
            continue
        ver = dll.msgr_version()
        major, minor = ver >> 16, (ver >> 8) & 0xFF
        if major != MAJOR or minor < MIN_MINOR:
            vs = dll.msgr_version_string().decode()
            raise LibraryError(
                f"{path} is libmsgr {vs}; this msgr package needs {MAJOR}.{MIN_MINOR} or a later "
                f"{MAJOR}.x (set {ENV_LIBRARY} to a matching library, or reinstall the package)"
            )
        return dll, path
    raise LibraryError(
        "libmsgr.so not found. Install the package with pip (it builds the library), "
        f"or set {ENV_LIBRARY}=/path/to/libmsgr.so.{MAJOR}. Tried:\n  " + "\n  ".join(tried)
    )


lib, path = load()

#: Version of the loaded library, "MAJOR.MINOR.PATCH".
version_string: str = lib.msgr_version_string().decode()
version: int = lib.msgr_version()


def strerror(code: int) -> str:
    text: bytes = lib.msgr_strerror(code)
    return text.decode()


def err_name(code: int) -> str:
    text: bytes = lib.msgr_err_name(code)
    return text.decode()


_errbuf_size = 1024


def last_error() -> str:
    """The calling thread's last failure text (msgr_last_error)."""
    buf = ctypes.create_string_buffer(_errbuf_size)
    lib.msgr_last_error(buf, _errbuf_size)
    return buf.value.decode(errors="replace")


def live_counts() -> "dict[str, int]":
    c = msgr_live_counts(size=ctypes.sizeof(msgr_live_counts))
    rc = lib.msgr_live_counts_get(ctypes.byref(c))
    if rc != 0:
        raise OSError(rc, strerror(rc))
    return {"messengers": c.messengers, "conns": c.conns, "msgs": c.msgs, "dispatchers": c.dispatchers}


def _bytes_offset() -> Optional[int]:
    """Offset of a bytes object's data from id(obj) in this CPython, checked
    (None if the layout is not the expected one): lets a send pass a bytes
    payload's address without a ctypes object per call."""
    if sys.implementation.name != "cpython":
        return None
    off = sys.getsizeof(b"") - 1
    probe = b"msgr-probe-\x01\x02\x03"
    try:
        if ctypes.string_at(id(probe) + off, len(probe)) == probe:
            return off
    except Exception:  # pragma: no cover - defensive
        pass
    return None


BYTES_OFFSET: Optional[int] = _bytes_offset()

__all__ = ["lib", "path", "load", "LibraryError", "SIGNATURES", "MAJOR", "version_string"]

