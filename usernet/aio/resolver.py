"""A stub resolver that asks DNS servers through usernet's own UDP and TCP (RFC 1035).

A program that runs with `--dns ADDR` (or with `--only`, which must not lean on the
kernel for anything) resolves names here instead of in the C library: the loop's
`getaddrinfo` calls `Resolver.getaddrinfo`, which answers from /etc/hosts, then from
its cache, then by asking the servers over usernet's UDP, and over TCP when an answer
comes back truncated (TC). It follows CNAME chains (asking again for a target the
answer did not resolve), retries each server `attempts` times with a `timeout` each,
and moves on to the next server on SERVFAIL, REFUSED or silence.

The cache honours TTLs (RFC 1035), and caches negative answers, NXDOMAIN and "no
records of this type" alike, for the TTL of the SOA record the server sends with them,
bounded by its MINIMUM field (RFC 2308 section 5); without an SOA a negative answer is
not cached. `DnsCache` takes the time as an argument, so its rules are tested without
clocks.

IPv6: AAAA records are asked for and returned like A records, and `AI_ADDRCONFIG` leaves
AAAA out unless usernet runs with IPv6 (`ipv6`). Servers may be IPv4 or IPv6 addresses:
the query goes over usernet's UDP (and TCP) of that family.

Which servers, in order (read again for every query, so a renewed DHCP lease or a router
advertisement that comes, changes or runs out takes effect at once): the one `--dns`
names, then those of the DHCP lease, then those router advertisements carry (RFC 8106
RDNSS, each only within its lifetime) — the order systemd-networkd lists a link's servers
in (static `DNS=`, DHCPv4's, then NDisc's). Under `--only` with none of these, the
`nameserver`s of /etc/resolv.conf. Without `--dns` or `--only`, names go to the C library
whenever the network names no server (see `Resolver.active`).

Search domains come from router advertisements too (RFC 8106 DNSSL, within their
lifetime): a name without a dot that /etc/hosts does not know is asked with each domain
appended, in order, then as it is — glibc's order for a name with fewer dots than its
`ndots` (1). A name with a dot is asked as it is only. When no name tried has an
address, the error is chosen as glibc's res_search chooses it: "no address" (EAI_NODATA)
if some name tried exists, else the first temporary failure (a server that failed or
did not answer: EAI_AGAIN, for the answer is unknown), and "not known" (EAI_NONAME) only
when every name tried is unknown; its message says what each name tried gave.

Servers are compared as addresses, not as spellings: `2001:db8::1` and `2001:DB8:0::1`
are one server, asked once, while `fe80::1%eth0` and `fe80::1%eth1` (a link-local
address is one per link) are two.
"""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from usernet.aio.routing import use_backend
from usernet.drivers.config import UsernetConfig
from usernet.drivers.host import Host
from usernet.stack.route import format_ip
from usernet.wire.dns import (
    CLASS_IN,
    DNS_PORT,
    RCODE_NOERROR,
    RCODE_NXDOMAIN,
    TYPE_A,
    TYPE_AAAA,
    TYPE_CNAME,
    TYPE_SOA,
    Message,
    Question,
    Soa,
    build_query,
    name_key,
    parse_message,
)
from usernet.wire.errors import MalformedPacket

__all__ = [
    "Answer",
    "DnsCache",
    "Resolver",
    "ResolverStats",
    "network_search",
    "network_servers",
    "parse_hosts",
    "parse_resolv_conf",
]

#: CNAME hops followed before a chain is declared a loop (glibc and the stub resolvers use 8-16).
MAX_CHAIN = 16
#: RFC 2308 section 5 asks for a bound on negative TTLs of one to three hours.
MAX_NEGATIVE_TTL = 3 * 3600
MAX_TTL = 7 * 86400
_EAI_NODATA = getattr(socket, "EAI_NODATA", socket.EAI_NONAME)


@dataclass(frozen=True)
class Answer:
    """The addresses of one type a name has (empty: it has none), its canonical name, and for how long."""

    name: str
    canonical: str
    qtype: int
    addresses: tuple[str, ...]
    rcode: int = RCODE_NOERROR
    ttl: int = 0


@dataclass
class ResolverStats:
    """Counters: what was asked how, what came back, what the cache and /etc/hosts saved."""

    udp_queries: int = 0
    tcp_queries: int = 0
    truncated: int = 0
    timeouts: int = 0
    errors: int = 0  # queries that failed otherwise: no route, refused, connection reset, malformed reply
    server_failures: int = 0
    ignored_replies: int = 0
    cache_hits: int = 0
    negative_hits: int = 0
    hosts_hits: int = 0


class DnsCache:
    """Answers by (name, type) until their TTL runs out; the time is always the caller's."""

    def __init__(self, max_entries: int = 4096) -> None:
        self._entries: dict[tuple[str, int], tuple[float, Answer]] = {}
        self._max = max_entries

    def get(self, name: str, qtype: int, now: float) -> Answer | None:
        """The answer still valid at `now`, its TTL counted down to what is left."""
        key = (name_key(name), qtype)
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, answer = entry
        if now >= expires:
            del self._entries[key]
            return None
        return Answer(answer.name, answer.canonical, qtype, answer.addresses, answer.rcode, int(expires - now))

    def put(self, answer: Answer, now: float) -> None:
        """Keep `answer` for its TTL (0: not at all); the oldest entry goes when the cache is full."""
        if answer.ttl <= 0:
            return
        key = (name_key(answer.name), answer.qtype)
        self._entries.pop(key, None)
        if len(self._entries) >= self._max:
            del self._entries[next(iter(self._entries))]
        self._entries[key] = (now + answer.ttl, answer)

    def __len__(self) -> int:
        return len(self._entries)


def parse_hosts(text: str) -> dict[str, tuple[str, ...]]:
    """/etc/hosts: name (case folded) -> its addresses in file order; malformed lines are skipped."""
    table: dict[str, list[str]] = {}
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) < 2:
            continue
        try:
            address = str(ipaddress.ip_address(fields[0].split("%", 1)[0]))
        except ValueError:
            continue
        for name in fields[1:]:
            found = table.setdefault(name_key(name.rstrip(".")), [])
            if address not in found:
                found.append(address)
    return {name: tuple(addresses) for name, addresses in table.items()}


def parse_resolv_conf(text: str) -> list[str]:
    """The `nameserver` addresses of a resolv.conf, IPv4 and IPv6, in order (a zone index dropped:
    usernet has one link)."""
    servers = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            try:
                servers.append(str(ipaddress.ip_address(fields[1].split("%", 1)[0])))
            except ValueError:
                continue
    return servers


def network_servers(host: Host) -> list[str]:
    """The DNS servers usernet's network names now: the DHCP lease's, then those router
    advertisements carried that are still within their lifetime (RFC 8106)."""
    ipv6 = host.iface.ipv6
    advertised = [] if ipv6 is None else [format_ip(server) for server in ipv6.dns_servers]
    return [*host.dns_servers, *advertised]


def network_search(host: Host) -> list[str]:
    """The search domains router advertisements carried that are still within their lifetime (RFC 8106)."""
    ipv6 = host.iface.ipv6
    return [] if ipv6 is None else list(ipv6.dns_search)


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


_MESSAGES = {
    socket.EAI_NONAME: "Name or service not known",
    _EAI_NODATA: "No address associated with hostname",
    socket.EAI_AGAIN: "Temporary failure in name resolution",
}


class _LookupFailed(socket.gaierror):
    """A socket.gaierror that keeps its reason apart, for the message of a search where every name failed."""

    detail: str = ""


def _gaierror(code: int, name: str, why: str = "") -> socket.gaierror:
    error = _LookupFailed(code, f"{_MESSAGES[code]} ({name}, asked through usernet{why})")
    error.detail = why.lstrip(":; ")
    return error


def _unique_servers(servers: Sequence[str]) -> list[str]:
    """`servers` without repeats, compared as addresses (a link-local one with its zone), in order."""
    seen: dict[ipaddress.IPv4Address | ipaddress.IPv6Address, str] = {}
    for server in servers:
        address = ipaddress.ip_address(server)
        if isinstance(address, ipaddress.IPv6Address) and address.scope_id is not None and not address.is_link_local:
            address = ipaddress.IPv6Address(server.split("%", 1)[0])  # a zone means nothing off the link-local range
        seen.setdefault(address, str(address))
    return list(seen.values())


_NXDOMAIN, _NODATA, _FAILED = 0, 1, 2  # what one name tried gave, when it gave no address


def _outcome(answers: Sequence[Answer | BaseException]) -> tuple[int, str, BaseException | None]:
    """(kind, what to say, the error) of one name whose answers (A, AAAA) hold no address: a failure
    if a query failed, else unknown if one says NXDOMAIN, else a name without an address."""
    for answer in answers:
        if isinstance(answer, socket.gaierror):
            detail = answer.detail if isinstance(answer, _LookupFailed) else str(answer)
            if answer.errno == socket.EAI_NONAME:  # a name DNS cannot carry: no such name
                return _NXDOMAIN, detail or "not a name DNS can carry", answer
            return _FAILED, f"temporary failure ({detail})" if detail else "temporary failure", answer
        if isinstance(answer, BaseException):
            raise answer  # not a lookup's outcome (a bug, a cancellation): let it through
    if any(isinstance(a, Answer) and a.rcode == RCODE_NXDOMAIN for a in answers):
        return _NXDOMAIN, "no such name", None
    return _NODATA, "no address", None


def _search_failed(name: str, tried: list[tuple[str, Sequence[Answer | BaseException]]]) -> BaseException:
    """The error for `name` when no name tried for it had an address: glibc's choice (see the module)."""
    outcomes = [(candidate, *_outcome(answers)) for candidate, answers in tried]
    if len(outcomes) == 1:  # no search list: as it was asked
        _, kind, _, error = outcomes[0]
        if error is not None:
            return error
        return _gaierror(socket.EAI_NONAME if kind == _NXDOMAIN else _EAI_NODATA, name)
    kinds = [kind for _, kind, _, _ in outcomes]
    if _NODATA in kinds:
        code = _EAI_NODATA
    elif _FAILED in kinds:
        failure = next(error for _, kind, _, error in outcomes if kind == _FAILED)
        code = failure.errno if isinstance(failure, OSError) and failure.errno in _MESSAGES else socket.EAI_AGAIN
    else:
        code = socket.EAI_NONAME
    said = "; ".join(f"{candidate}: {what}" for candidate, _, what, _ in outcomes)
    return _gaierror(code, name, f", as {said}")


class _Reply(asyncio.DatagramProtocol):
    """Waits for the one datagram that answers our query (same ID and question); others are counted and ignored."""

    def __init__(self, ident: int, question: Question, stats: ResolverStats) -> None:
        self.ident = ident
        self.question = question
        self.stats = stats
        self.done: asyncio.Future[Message] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if self.done.done():
            return
        try:
            message = parse_message(data)
        except MalformedPacket:
            self.stats.ignored_replies += 1
            return
        if _answers(message, self.ident, self.question):
            self.done.set_result(message)
        else:
            self.stats.ignored_replies += 1

    def error_received(self, exc: Exception) -> None:
        if not self.done.done():
            self.done.set_exception(exc)


def _answers(message: Message, ident: int, question: Question) -> bool:
    """True when `message` is a response to our query: its ID, and our question echoed back."""
    if not message.is_response or message.ident != ident or len(message.questions) != 1:
        return False
    asked = message.questions[0]
    return (name_key(asked.name), asked.qtype, asked.qclass) == (name_key(question.name), question.qtype, CLASS_IN)


@dataclass
class Resolver:
    """Resolves names through DNS servers reached over usernet, after `hosts`: `servers` (IPv4 or
    IPv6 addresses, `--dns`'s) first, then what `network` names at the time of the query (DHCP's,
    then RA's), and only when neither names one, `fallback` (resolv.conf's under `--only`)."""

    servers: Sequence[str]
    hosts: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    port: int = DNS_PORT
    timeout: float = 2.0
    attempts: int = 2
    cache: DnsCache = field(default_factory=DnsCache)
    stats: ResolverStats = field(default_factory=ResolverStats)
    ipv6: bool = False  # usernet has IPv6 addresses: AI_ADDRCONFIG asks for AAAA too
    network: Callable[[], Sequence[str]] | None = None  # the servers the network names now
    fallback: Sequence[str] = ()
    only: bool = False  # names never go to the C library (--only): without a server, lookups fail
    search: Callable[[], Sequence[str]] | None = None  # the search domains now, for names without a dot

    def __post_init__(self) -> None:
        for server in (*self.servers, *self.fallback):
            try:
                ipaddress.ip_address(server)
            except ValueError:
                raise ValueError(f"DNS server {server!r} is not an IPv4 or IPv6 address") from None
        if self.timeout <= 0 or self.attempts < 1:
            raise ValueError("the resolver needs a timeout above 0 and at least one attempt")

    def current_servers(self) -> list[str]:
        """The servers a query made now asks, in order of preference, each once (as an address: see the module)."""
        found = _unique_servers((*self.servers, *(self.network() if self.network is not None else ())))
        return found or _unique_servers(self.fallback)

    @property
    def active(self) -> bool:
        """Whether names go here rather than to the C library: always with `only`, else while
        some server is known (a network that names none leaves names to the C library)."""
        return self.only or bool(self.current_servers())

    @classmethod
    def from_config(
        cls,
        config: UsernetConfig,
        *,
        network: Callable[[], Sequence[str]] | None = None,
        search: Callable[[], Sequence[str]] | None = None,
        resolv_conf: str = "/etc/resolv.conf",
        hosts: str = "/etc/hosts",
    ) -> Resolver | None:
        """The resolver a loop with `config` uses (see the module for the order of its servers);
        `network` names the servers DHCP and router advertisements gave (`network_servers`),
        `search` the search domains (`network_search`).

        None when neither `--dns`, `--only` nor a network that may name servers is there: then
        names go to the C library, on the kernel's network.
        """
        if config.dns is None and network is None and not config.only:
            return None
        fallback = parse_resolv_conf(_read(resolv_conf)) if config.only else []
        explicit = [] if config.dns is None else [config.dns]
        return cls(
            explicit, parse_hosts(_read(hosts)), ipv6=config.wants_ipv6, network=network, fallback=fallback,
            only=config.only, search=search,
        )  # fmt: skip

    # -- getaddrinfo -------------------------------------------------------------------------

    async def getaddrinfo(
        self, host: str | bytes, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
    ) -> list[tuple[Any, ...]]:
        """What `socket.getaddrinfo` returns for a name, with its addresses from DNS; raises socket.gaierror."""
        name = host.decode("idna") if isinstance(host, bytes) else host
        if not name.isascii():
            name = name.encode("idna").decode("ascii")
        if family not in (0, socket.AF_INET, socket.AF_INET6):
            raise socket.gaierror(socket.EAI_FAMILY, "ai_family not supported")
        if family == socket.AF_INET6:
            qtypes: tuple[int, ...] = (TYPE_AAAA,)
        elif family == socket.AF_INET or (flags & socket.AI_ADDRCONFIG and not self.ipv6):
            qtypes = (TYPE_A,)  # AI_ADDRCONFIG: usernet has IPv4 addresses only
        else:
            qtypes = (TYPE_A, TYPE_AAAA)
        tried: list[tuple[str, Sequence[Answer | BaseException]]] = []
        found: list[Answer] = []
        for candidate in self._candidates(name):
            answers = await asyncio.gather(*(self.lookup(candidate, qtype) for qtype in qtypes), return_exceptions=True)
            found = [a for a in answers if isinstance(a, Answer) and a.addresses]
            if found:
                break
            tried.append((candidate, answers))
        if not found:
            raise _search_failed(name, tried)
        numeric = flags & ~(socket.AI_CANONNAME | socket.AI_ADDRCONFIG) | socket.AI_NUMERICHOST
        infos: list[tuple[Any, ...]] = []
        for answer in found:
            for address in answer.addresses:
                infos.extend(socket.getaddrinfo(address, port, family, type, proto, numeric))
        if infos and flags & socket.AI_CANONNAME:
            fam, kind, number, _, sockaddr = infos[0]
            infos[0] = (fam, kind, number, found[0].canonical, sockaddr)
        return infos

    def _candidates(self, name: str) -> list[str]:
        """The names to ask for `name`, in order: with each search domain first when it has no dot
        and /etc/hosts does not know it (see the module), then as it is."""
        if "." in name or self.search is None or name_key(name) in self.hosts:
            return [name]
        return [*(f"{name}.{domain.rstrip('.')}" for domain in self.search()), name]

    # -- lookups -----------------------------------------------------------------------------

    async def lookup(self, name: str, qtype: int) -> Answer:
        """The `qtype` (A or AAAA) addresses of `name`, following CNAMEs; raises socket.gaierror(EAI_AGAIN)
        when no server answers."""
        loop = asyncio.get_running_loop()
        key = name_key(name.rstrip("."))
        listed = self.hosts.get(key)
        if listed is not None:
            version = 4 if qtype == TYPE_A else 6
            addresses = tuple(a for a in listed if ipaddress.ip_address(a).version == version)
            if addresses:
                self.stats.hosts_hits += 1
                return Answer(name, name, qtype, addresses)
        current = name.rstrip(".")
        try:
            build_query(0, current, qtype)  # a name DNS cannot carry fails here, as the C library's does
        except ValueError as exc:
            raise _gaierror(socket.EAI_NONAME, name, f": {exc}") from None
        ttl = MAX_TTL
        for _ in range(MAX_CHAIN):
            cached = self.cache.get(current, qtype, loop.time())
            if cached is not None:
                if cached.addresses:
                    self.stats.cache_hits += 1
                else:
                    self.stats.negative_hits += 1
                return Answer(name, cached.canonical, qtype, cached.addresses, cached.rcode, min(ttl, cached.ttl))
            response = await self._ask(Question(current, qtype))
            target, addresses, chain_ttl = _follow(response, current, qtype)
            if addresses:
                answer = Answer(current, target, qtype, addresses, RCODE_NOERROR, min(chain_ttl, MAX_TTL))
                self.cache.put(answer, loop.time())
                return Answer(name, target, qtype, addresses, RCODE_NOERROR, min(ttl, answer.ttl))
            negative = _negative_ttl(response)
            if response.rcode == RCODE_NXDOMAIN or negative is not None or name_key(target) == name_key(current):
                answer = Answer(current, target, qtype, (), response.rcode, negative or 0)
                self.cache.put(answer, loop.time())
                return Answer(name, target, qtype, (), response.rcode, min(ttl, answer.ttl))
            # The chain leaves this answer unresolved at `target`: ask for it in turn.
            ttl = min(ttl, chain_ttl)
            current = target
        raise _gaierror(socket.EAI_AGAIN, name, f": the CNAME chain is longer than {MAX_CHAIN}")

    async def _ask(self, question: Question) -> Message:
        """One response to `question` from the first server that gives one; TCP when UDP's is truncated."""
        servers = self.current_servers()
        if not servers:
            raise _gaierror(socket.EAI_AGAIN, question.name, ": no DNS server is configured, give one with --dns ADDR")
        last = "no answer"
        for _ in range(self.attempts):
            for server in servers:
                try:
                    response = await self._udp(server, question)
                    if response.truncated:
                        self.stats.truncated += 1
                        response = await self._tcp(server, question)
                except TimeoutError:
                    self.stats.timeouts += 1
                    last = f"{server} did not answer within {self.timeout} s"
                    continue
                except (OSError, MalformedPacket) as exc:
                    self.stats.errors += 1
                    last = f"{server}: {exc}"
                    continue
                if response.rcode in (RCODE_NOERROR, RCODE_NXDOMAIN):
                    return response
                self.stats.server_failures += 1
                last = f"{server} answered with error code {response.rcode}"
        raise _gaierror(socket.EAI_AGAIN, question.name, f"; last: {last}")

    async def _udp(self, server: str, question: Question) -> Message:
        loop = asyncio.get_running_loop()
        ident = secrets.randbits(16)
        self.stats.udp_queries += 1
        with use_backend("usernet"):
            transport, reply = await loop.create_datagram_endpoint(
                lambda: _Reply(ident, question, self.stats), remote_addr=(server, self.port)
            )
        try:
            transport.sendto(build_query(ident, question.name, question.qtype))
            return await asyncio.wait_for(reply.done, self.timeout)
        finally:
            transport.close()

    async def _tcp(self, server: str, question: Question) -> Message:
        """RFC 1035 section 4.2.2 (and RFC 7766): each message behind a two-byte length."""
        ident = secrets.randbits(16)
        self.stats.tcp_queries += 1
        query = build_query(ident, question.name, question.qtype)
        with use_backend("usernet"):
            reader, writer = await asyncio.wait_for(asyncio.open_connection(server, self.port), self.timeout)
        try:
            writer.write(len(query).to_bytes(2, "big") + query)
            async with asyncio.timeout(self.timeout):
                while True:
                    size = int.from_bytes(await reader.readexactly(2), "big")
                    message = parse_message(await reader.readexactly(size))
                    if _answers(message, ident, question):
                        return message
                    self.stats.ignored_replies += 1
        except asyncio.IncompleteReadError:
            raise ConnectionResetError(f"DNS server {server} closed the TCP connection before answering") from None
        finally:
            writer.close()


def _follow(response: Message, name: str, qtype: int) -> tuple[str, tuple[str, ...], int]:
    """(the name the CNAME chain from `name` ends at, its `qtype` addresses in the answer, the chain's least TTL)."""
    records = [r for r in response.answers if r.rclass == CLASS_IN]
    current = name
    ttl = MAX_TTL
    seen = {name_key(current)}
    while True:
        alias = next((r for r in records if r.rtype == TYPE_CNAME and name_key(r.name) == name_key(current)), None)
        if alias is None or not isinstance(alias.data, str):
            break
        ttl = min(ttl, alias.ttl)
        current = alias.data
        if name_key(current) in seen:
            raise _gaierror(socket.EAI_AGAIN, name, ": the CNAME chain loops")
        seen.add(name_key(current))
    found = [r for r in records if r.rtype == qtype and name_key(r.name) == name_key(current)]
    addresses = tuple(r.data for r in found if isinstance(r.data, str))
    if found:
        ttl = min(ttl, *(r.ttl for r in found))
    return current, addresses, ttl


def _negative_ttl(response: Message) -> int | None:
    """RFC 2308 section 5: how long a negative answer may be cached, from its SOA; None without one."""
    for record in response.authorities:
        if record.rtype == TYPE_SOA and isinstance(record.data, Soa):
            return min(record.ttl, record.data.minimum, MAX_NEGATIVE_TTL)
    return None
