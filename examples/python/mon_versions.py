#!/usr/bin/env python3
"""mon_versions.py: asks a real Ceph monitor for its versions, as
``ceph mon versions`` does, over msgr2 with auth "none".

    mon_versions.py MON_ADDR [--what osdmap] [--command '{"prefix": "mon versions"}']

MON_ADDR is the monitor's v2 address ("v2:127.0.0.1:3300" or
"127.0.0.1:3300"); the cluster must allow auth none (see
/work/shared/msgr2/ceph-on-loopback.md). Prints the monitor's fsid, the
latest epoch of a map (MMonGetVersion) and the command's output
(MMonCommand), and exits 0 if the monitor answered everything.

Shows: talking to a Ceph daemon, whose messages are Ceph's own encodings
(built and decoded here with struct, following core/ceph/message.go), a
lossy client session to a monitor (Ceph's MonClient policy), matching
replies by tid / handle, and a Dispatcher-less request/reply loop.

The handshake: our messenger is "client.?" (a new client, numbered by the
monitor) and connects with peer type MON; libmsgr then authenticates with
method none in the monitor's mode, as client.admin, and the monitor assigns
a global id.
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
import time
import uuid
from typing import Callable, List, Optional, Tuple

import msgr

# Ceph message types (CEPH_MSG_*, MSG_MON_*).
MON_MAP = 4
MON_GET_MAP = 5
MON_GET_VERSION = 19
MON_GET_VERSION_REPLY = 20
MON_COMMAND = 50
MON_COMMAND_ACK = 51


class MonError(Exception):
    pass


# --- Ceph encodings (little endian; strings are u32 length + bytes) ----------


def enc_string(s: str) -> bytes:
    b = s.encode()
    return struct.pack("<I", len(b)) + b


def enc_strings(v: List[str]) -> bytes:
    return struct.pack("<I", len(v)) + b"".join(enc_string(s) for s in v)


def paxos_prefix(version: int = 0) -> bytes:
    # PaxosServiceMessage: u64 version, i16 deprecated_session_mon (-1),
    # u64 deprecated_session_mon_tid.
    return struct.pack("<QhQ", version, -1, 0)


class Reader:
    def __init__(self, b: bytes) -> None:
        self.b, self.off = b, 0

    def take(self, n: int) -> bytes:
        if self.off + n > len(self.b):
            raise MonError(f"short message: need {n} bytes at {self.off}, have {len(self.b) - self.off}")
        v = self.b[self.off : self.off + n]
        self.off += n
        return v

    def u8(self) -> int:
        return self.take(1)[0]

    def u32(self) -> int:
        return struct.unpack("<I", self.take(4))[0]

    def i32(self) -> int:
        return struct.unpack("<i", self.take(4))[0]

    def u64(self) -> int:
        return struct.unpack("<Q", self.take(8))[0]

    def string(self) -> str:
        return self.take(self.u32()).decode(errors="replace")

    def strings(self) -> List[str]:
        return [self.string() for _ in range(self.u32())]


def decode_monmap_fsid(front: bytes) -> Tuple[uuid.UUID, int]:
    """MMonMap: front = bufferlist(monmap); the monmap begins with
    ENCODE_START (u8 v, u8 compat, u32 len), then the fsid and the epoch."""
    r = Reader(front)
    blob = Reader(r.take(r.u32()))
    v, compat = blob.u8(), blob.u8()
    blob.u32()  # length of the encoded struct
    if compat > 9:
        raise MonError(f"monmap encoding v{v} compat {compat} is newer than this decoder")
    fsid = uuid.UUID(bytes=blob.take(16))
    return fsid, blob.u32()


# --- the client ------------------------------------------------------------------


class MonClient:
    """One lossy session to one monitor; requests are matched by tid
    (commands) or handle (MMonGetVersion), maps by arrival."""

    def __init__(self, addr: str, timeout: float = 10.0) -> None:
        self.timeout = timeout
        self.m = msgr.Messenger("client.?")  # a new client: the monitor numbers it
        try:
            # Ceph's MonClient: lossy; on a reset the request is lost and
            # must be sent again (this example gives up instead).
            self.m.set_policy(msgr.EntityType.MON, msgr.Policy.lossy_client())
            self.m.start()
            self.conn = self.m.connect(addr, msgr.EntityType.MON)
        except BaseException:
            self.m.close()
            raise
        self.next_id = 0
        self.fsid: Optional[uuid.UUID] = None

    def close(self) -> None:
        self.conn.close()
        self.m.close()

    def __enter__(self) -> "MonClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _wait(self, match: Callable[[msgr.Message], bool]) -> msgr.Message:
        deadline = time.monotonic() + self.timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise MonError("no answer from the monitor in time")
            for it in self.m.recv_batch(64, timeout=min(left, 0.5)):
                if isinstance(it, msgr.Event):
                    if it.type in (msgr.EventType.RESET, msgr.EventType.REFUSED):
                        raise MonError(f"connection to the monitor {it.type.name.lower()}")
                    continue
                if match(it):
                    return it
                it.close()  # something we did not ask for (a map push...)

    def get_monmap(self) -> Tuple[uuid.UUID, int]:
        """MMonGetMap -> MMonMap: the fsid (needed by commands) and epoch."""
        self.conn.send(msgr.Message(MON_GET_MAP))
        with self._wait(lambda m: m.type == MON_MAP) as reply:
            fsid, epoch = decode_monmap_fsid(reply.tobytes(msgr.Segment.FRONT))
        self.fsid = fsid
        return fsid, epoch

    def get_version(self, what: str) -> Tuple[int, int]:
        """MMonGetVersion -> (latest, oldest) epoch of a map: "osdmap",
        "monmap", "mdsmap"..."""
        self.next_id += 1
        handle = self.next_id
        self.conn.send(msgr.Message(MON_GET_VERSION, front=struct.pack("<Q", handle) + enc_string(what)))

        def match(m: msgr.Message) -> bool:
            return m.type == MON_GET_VERSION_REPLY and struct.unpack_from("<Q", m.front)[0] == handle

        with self._wait(match) as reply:
            r = Reader(reply.tobytes(msgr.Segment.FRONT))
            r.u64()  # handle
            latest = r.u64()
            oldest = r.u64() if reply.version >= 2 else 0
        return latest, oldest

    def command(self, cmd: dict) -> Tuple[int, str, bytes]:
        """MMonCommand -> MMonCommandAck: (r, status text, output)."""
        if self.fsid is None:
            self.get_monmap()
        assert self.fsid is not None
        self.next_id += 1
        tid = self.next_id
        front = paxos_prefix() + self.fsid.bytes + enc_strings([json.dumps(cmd)])
        self.conn.send(msgr.Message(MON_COMMAND, front=front, tid=tid))
        with self._wait(lambda m: m.type == MON_COMMAND_ACK and m.tid == tid) as ack:
            r = Reader(ack.tobytes(msgr.Segment.FRONT))
            r.take(8 + 2 + 8)  # paxos prefix
            rc, rs = r.i32(), r.string()
            out = ack.tobytes(msgr.Segment.DATA)
        return rc, rs, out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("addr", help='the monitor, e.g. "v2:127.0.0.1:3300"')
    ap.add_argument("--what", default="osdmap", help="map for MMonGetVersion (default osdmap)")
    ap.add_argument("--command", default='{"prefix": "mon versions"}', help="monitor command (JSON)")
    ap.add_argument("--timeout", type=float, default=10.0)
    a = ap.parse_args()
    try:
        with MonClient(a.addr, a.timeout) as mc:
            fsid, epoch = mc.get_monmap()
            print(f"fsid {fsid}, monmap epoch {epoch}")
            latest, oldest = mc.get_version(a.what)
            print(f"{a.what}: latest epoch {latest}, oldest {oldest}")
            rc, rs, out = mc.command(json.loads(a.command))
            print(f"command {a.command}: r={rc} {rs!r}")
            print(out.decode(errors="replace"))
            return 0 if rc == 0 else 1
    except (MonError, msgr.Error) as e:
        print(f"mon_versions: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
