"""Policy: how connections to one type of peer behave (Ceph's
Messenger::Policy)."""

from __future__ import annotations

import ctypes
import dataclasses
from typing import Union

from . import _lib
from ._lib import lib
from .constants import PolicyFlag, PolicyKind
from .errors import InvalidArgument, from_code


@dataclasses.dataclass(frozen=True)
class Policy:
    """A connection policy (msgr_policy). Start from a Ceph preset
    (``Policy.lossy_client()``, ``Policy.stateful_server()``...) and adjust
    with ``dataclasses.replace`` or ``with_throttle``; pass it to
    ``Messenger.set_policy(peer_type, policy)`` before ``start()``."""

    flags: int = 0
    features_supported: int = 0
    features_required: int = 0
    #: Cap on received bytes / messages not yet released by the
    #: application (0 = unlimited).
    throttle_bytes: int = 0
    throttle_messages: int = 0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if not isinstance(v, int):
                raise TypeError(f"Policy.{f.name} must be an int, not {type(v).__name__}")
            hi = 0xFFFFFFFF if f.name == "flags" else 0xFFFFFFFFFFFFFFFF
            if not 0 <= v <= hi:
                raise InvalidArgument(detail=f"Policy.{f.name} {v} is out of range")

    @classmethod
    def preset(cls, kind: Union[PolicyKind, int], features_required: int = 0) -> "Policy":
        """Ceph's preset `kind` (msgr_policy_init)."""
        if not isinstance(kind, int) or not isinstance(features_required, int):
            raise TypeError("kind and features_required must be ints")
        if not 0 <= features_required <= 0xFFFFFFFFFFFFFFFF:
            raise InvalidArgument(detail=f"features_required {features_required} is out of range")
        p = _lib.msgr_policy()
        rc = lib.msgr_policy_init(ctypes.byref(p), int(kind), features_required)
        if rc:
            raise from_code(rc)
        return cls(p.flags, p.features_supported, p.features_required, p.throttle_bytes, p.throttle_messages)

    @classmethod
    def lossy_client(cls, features_required: int = 0) -> "Policy":
        return cls.preset(PolicyKind.LOSSY_CLIENT, features_required)

    @classmethod
    def lossless_client(cls, features_required: int = 0) -> "Policy":
        return cls.preset(PolicyKind.LOSSLESS_CLIENT, features_required)

    @classmethod
    def lossless_peer(cls, features_required: int = 0) -> "Policy":
        return cls.preset(PolicyKind.LOSSLESS_PEER, features_required)

    @classmethod
    def lossless_peer_reuse(cls, features_required: int = 0) -> "Policy":
        return cls.preset(PolicyKind.LOSSLESS_PEER_REUSE, features_required)

    @classmethod
    def stateful_server(cls, features_required: int = 0) -> "Policy":
        return cls.preset(PolicyKind.STATEFUL_SERVER, features_required)

    @classmethod
    def stateless_server(cls, features_required: int = 0) -> "Policy":
        return cls.preset(PolicyKind.STATELESS_SERVER, features_required)

    @classmethod
    def stateless_registered_server(cls, features_required: int = 0) -> "Policy":
        return cls.preset(PolicyKind.STATELESS_REGISTERED_SERVER, features_required)

    def with_throttle(self, bytes: int = 0, messages: int = 0) -> "Policy":
        return dataclasses.replace(self, throttle_bytes=bytes, throttle_messages=messages)

    @property
    def lossy(self) -> bool:
        return bool(self.flags & PolicyFlag.LOSSY)

    @property
    def server(self) -> bool:
        return bool(self.flags & PolicyFlag.SERVER)

    @property
    def standby(self) -> bool:
        return bool(self.flags & PolicyFlag.STANDBY)

    @property
    def resetcheck(self) -> bool:
        return bool(self.flags & PolicyFlag.RESETCHECK)

    def _to_c(self) -> _lib.msgr_policy:
        return _lib.msgr_policy(
            size=ctypes.sizeof(_lib.msgr_policy),
            flags=self.flags,
            features_supported=self.features_supported,
            features_required=self.features_required,
            throttle_bytes=self.throttle_bytes,
            throttle_messages=self.throttle_messages,
        )


__all__ = ["Policy"]
