"""Initial sequence numbers (RFC 6528), SYN cookies (RFC 4987 §3.6) and Fast Open cookies (RFC 7413).

All hash the connection's addresses with a secret key, so that an off-path attacker
can neither predict the ISN of someone else's connection, nor forge the ACK that
completes a handshake, nor the cookie that lets a SYN's data through. The key is
given, never made here: the stack passes `os.urandom(16)` made once at its creation,
tests pass a fixed key. Keyed BLAKE2s serves as the pseudorandom function; each use
has its own personalisation string, so the hashes below are unrelated even under one key.
"""

from __future__ import annotations

import hashlib
import hmac
from struct import Struct

from usernet.stack.tcp.seq import seq_add

_PORTS = Struct("!HH")
_COOKIE_INPUT = Struct("!HHIqB")  # ports, client ISN, time counter, MSS index
_TICKS_PER_SECOND = 250_000  # the 4-microsecond timer of RFC 6528 §3 / RFC 9293 §3.4.1


def _keyed(secret: bytes, person: bytes, digest_size: int) -> hashlib.blake2s:
    if not 1 <= len(secret) <= 32:
        raise ValueError(f"the secret must be 1 to 32 bytes (os.urandom(16) will do), got {len(secret)}")
    return hashlib.blake2s(key=secret, digest_size=digest_size, person=person)


class IsnGenerator:
    """ISN = M + F(localip, localport, remoteip, remoteport, secretkey) (RFC 6528 §3).

    M is a timer ticking every 4 microseconds, read from the `now` handed in; F is
    keyed BLAKE2s truncated to 32 bits. Successive connections between the same two
    endpoints get increasing ISNs (so old duplicates are rejected, as with a plain
    clock) while different endpoint pairs' sequence spaces are unrelated.

    The TSval offset (RFC 7323 §7.1) is the other half of the same 64-bit digest: a
    connection asks for its ISN and then its offset for the same addresses, so one
    keyed hash serves both (`isn` keeps the half it did not use for the `ts_offset`
    that follows). The halves of a pseudorandom function's output are independent, so
    neither tells anything of the other; the offset is on the wire anyway (TSval less
    the clock), so keeping it is no secret kept.
    """

    __slots__ = ("_hash", "_last_message", "_last_ts")

    def __init__(self, secret: bytes) -> None:
        self._hash = _keyed(secret, b"tcp-isnt", 8)
        self._last_message = b""
        self._last_ts = 0

    def _digest(self, message: bytes) -> int:
        h = self._hash.copy()  # the keyed state is precomputed: copy, not re-key
        h.update(message)
        return int.from_bytes(h.digest(), "big")

    def isn(self, now: float, local_ip: bytes, local_port: int, remote_ip: bytes, remote_port: int) -> int:
        """The initial send sequence number for a new connection at time `now`."""
        message = local_ip + remote_ip + _PORTS.pack(local_port, remote_port)
        f = self._digest(message)
        self._last_message = message
        self._last_ts = f & 0xFFFFFFFF
        return seq_add(int(now * _TICKS_PER_SECOND), f >> 32)

    def ts_offset(self, local_ip: bytes, local_port: int, remote_ip: bytes, remote_port: int) -> int:
        """A per-connection offset for the TSval clock (RFC 7323 §7.1), 32 bits."""
        message = local_ip + remote_ip + _PORTS.pack(local_port, remote_port)
        if message == self._last_message:
            return self._last_ts
        return self._digest(message) & 0xFFFFFFFF


class SynCookies:
    """Stateless SYN-ACKs: the server's ISN carries what it needs to finish the handshake.

    Cookie layout (the 32-bit ISN of the SYN-ACK):

        bits 31-27  count mod 32, where count = floor(now / period)
        bits 26-24  index into MSS_TABLE of the MSS granted
        bits 23-0   the low 24 bits of keyed BLAKE2s over (local address, remote
                    address, local port, remote port, the client's ISN, count, index)

    The final ACK of the handshake has ack = cookie + 1 and seq = client ISN + 1.
    `validate` recovers count from its 5 low bits (the most recent count with those
    bits), rejects cookies older than `max_age` periods, and recomputes the hash: a
    blind attacker has a 2**-24 chance per guess. Only the MSS survives the trip;
    window scaling, SACK-permitted and timestamps offered in the SYN are lost unless
    the caller encodes them elsewhere (Linux uses the TSval).
    """

    __slots__ = ("_hash", "max_age", "period")

    # The largest entry not above the MSS the client offered is granted. From 216 (a
    # client offering less gets 216; RFC 9293 allows any MSS down to a few bytes, but
    # such clients do not exist) through Ethernet's 1460 and the usual jumbo sizes to
    # a 65520-byte TAP MTU.
    MSS_TABLE = (216, 536, 1220, 1380, 1440, 1460, 8960, 65480)

    def __init__(self, secret: bytes, period: float = 64.0, max_age: int = 2) -> None:
        if period <= 0 or not 0 <= max_age < 31:
            raise ValueError(f"need period > 0 and 0 <= max_age < 31, got {period} and {max_age}")
        self.period = period
        self.max_age = max_age
        self._hash = _keyed(secret, b"tcp-syn", 4)

    def _mac(
        self,
        local_ip: bytes,
        local_port: int,
        remote_ip: bytes,
        remote_port: int,
        client_isn: int,
        count: int,
        index: int,
    ) -> int:
        h = self._hash.copy()
        h.update(local_ip + remote_ip + _COOKIE_INPUT.pack(local_port, remote_port, client_isn, count, index))
        return int.from_bytes(h.digest(), "big") & 0xFFFFFF

    def encode(
        self,
        now: float,
        local_ip: bytes,
        local_port: int,
        remote_ip: bytes,
        remote_port: int,
        client_isn: int,
        mss: int,
    ) -> int:
        """The cookie to use as ISN in the SYN-ACK answering a SYN with seq `client_isn`."""
        table = self.MSS_TABLE
        index = len(table) - 1
        while index and table[index] > mss:
            index -= 1
        count = int(now // self.period)
        mac = self._mac(local_ip, local_port, remote_ip, remote_port, client_isn & 0xFFFFFFFF, count, index)
        return ((count & 31) << 27) | (index << 24) | mac

    def validate(
        self,
        now: float,
        local_ip: bytes,
        local_port: int,
        remote_ip: bytes,
        remote_port: int,
        seg_seq: int,
        seg_ack: int,
    ) -> int | None:
        """The MSS granted if the ACK (seq `seg_seq`, ack `seg_ack`) answers a recent
        cookie for this connection; None if it does not."""
        cookie = seq_add(seg_ack, -1)
        now_count = int(now // self.period)
        age = (now_count - (cookie >> 27)) & 31
        if age > self.max_age:
            return None
        index = (cookie >> 24) & 7
        client_isn = seq_add(seg_seq, -1)
        mac = self._mac(local_ip, local_port, remote_ip, remote_port, client_isn, now_count - age, index)
        if mac != cookie & 0xFFFFFF:
            return None
        return self.MSS_TABLE[index]


class FastOpenCookies:
    """TCP Fast Open cookies (RFC 7413 §4.1.2): a MAC of the client's and the server's address.

    The key rotates without a clock of its own: key number k = floor(now / period), each
    derived from the secret by keyed BLAKE2s, so a cookie is accepted while its key is the
    current or the previous one (Linux's primary and backup keys) and an old one leaks
    nothing about the next. A cookie is 8 bytes, as Linux's.
    """

    SIZE = 8

    __slots__ = ("_keys", "_root", "period")

    def __init__(self, secret: bytes, period: float) -> None:
        if period <= 0:
            raise ValueError(f"the key period must be > 0 seconds, got {period}")
        self.period = period
        self._root = _keyed(secret, b"tfo-key", 16)
        self._keys: dict[int, hashlib.blake2s] = {}  # key number -> keyed hash; the last two kept

    def _mac(self, number: int, client: bytes, server: bytes) -> bytes:
        h = self._keys.get(number)
        if h is None:
            root = self._root.copy()
            root.update(number.to_bytes(8, "big", signed=True))
            h = self._keys[number] = hashlib.blake2s(key=root.digest(), digest_size=self.SIZE, person=b"tcp-tfo")
            for old in [k for k in self._keys if k < number - 1]:
                del self._keys[old]
        h = h.copy()
        h.update(client + server)
        return h.digest()

    def make(self, now: float, client: bytes, server: bytes) -> bytes:
        """The cookie a server hands the client at `client` (in its SYN-ACK) now."""
        return self._mac(int(now // self.period), client, server)

    def valid(self, now: float, client: bytes, server: bytes, cookie: bytes) -> bool:
        """Whether a SYN's cookie was made for this client by the current or the previous key."""
        number = int(now // self.period)
        return any(hmac.compare_digest(self._mac(n, client, server), cookie) for n in (number, number - 1))
