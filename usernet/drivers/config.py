"""What a usernet loop runs on, from keyword arguments, command-line options or USERNET_* variables.

The option table below is the one place that defines each option: its flag, its
environment variable and its help. `usernet up/ping/run`, `python -m usernet` and the
`sitecustomize` that `usernet run` injects all read it, so a setting means the same
everywhere and a parent process can hand its settings to a child through the
environment (`UsernetConfig.to_env`).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import ipaddress
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from usernet.drivers.workers import WorkerSeat
from usernet.link.url import LINK_URL_FORMS, DeviceUrl, LinkUrl, TapUrl, TunUrl, parse_link_url

if TYPE_CHECKING:
    from usernet.drivers.host import Host
    from usernet.link.base import Link
    from usernet.link.observe import Observer
    from usernet.link.tap import TapLink

__all__ = [
    "DEFAULT_ADDRESS",
    "DEFAULT_HOST_ADDRESS",
    "UsernetConfig",
    "add_arguments",
    "configure_host_side",
    "open_host",
    "parse_fault",
]

DEFAULT_ADDRESS = "192.0.2.2/24"
DEFAULT_HOST_ADDRESS = "192.0.2.1/24"
#: How long `--dhcp` waits for a lease before giving up (DISCOVERs go out at 0, ~4 and ~12 s).
DHCP_TIMEOUT = 15.0
LoopKind = Literal["asyncio", "uvloop"]
LOOP_KINDS: tuple[LoopKind, ...] = ("asyncio", "uvloop")

#: FaultInjector keyword arguments that `--fault` accepts, with their types.
_FAULT_FIELDS: dict[str, type] = {
    "seed": int, "loss": float, "duplicate": float, "reorder": float, "corrupt": float,
    "delay": float, "jitter": float, "rate": float, "direction": str, "burst": int,
    "rate_queue": int, "reorder_timeout": float,
}  # fmt: skip  # several fields a line, as --fault's help groups them
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})


def parse_fault(spec: str) -> dict[str, Any]:
    """Turn "loss=0.01,seed=1,delay=0.005" into FaultInjector keyword arguments (seed defaults to 0)."""
    kwargs: dict[str, Any] = {"seed": 0}
    for item in spec.split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, value = item.partition("=")
        name = name.strip()
        kind = _FAULT_FIELDS.get(name)
        if not sep or kind is None:
            known = ", ".join(_FAULT_FIELDS)
            raise ValueError(f"bad fault setting {item!r}: write name=value with a name among {known}")
        try:
            kwargs[name] = kind(value.strip())
        except ValueError:
            raise ValueError(f"fault setting {name}={value!r} is not a valid {kind.__name__}") from None
    return kwargs


@dataclass(frozen=True)
class UsernetConfig:
    """Where usernet's interface lives and how loops use it.

    `tap` is created (or, if it exists as a persistent TAP, attached to); `host_address`
    is given to the kernel's side of a TAP usernet creates; `sandbox` puts the TAP in a
    throwaway network namespace; `offloads` opens the TAP with vnet_hdr, checksum
    offload and TSO; `no_gso` turns software GSO off on a TAP without them (see TapLink:
    then the stack builds every MTU-sized frame itself), `no_gro` software GRO (then the
    stack takes in every received segment on its own; `fault` turns it off too, so that
    faults hit wire frames, not merged runs); `loop` picks the base loop for
    code that does not choose one itself;
    `only` refuses the kernel as a fallback for destinations that are not on usernet's
    networks (and makes names resolve through usernet, see below).

    `link` names the link by URL (see usernet.link.url: `tap:NAME`, `tun:NAME`,
    `udp://HOST:PORT?peer=HOST:PORT`); when it is set it wins over `tap`, which is the
    same as `link="tap:NAME"`. `sandbox`, `offloads` and `host_address` are about a TAP
    or a TUN and refuse any other link. `dns` is the address (IPv4 or IPv6) of a DNS server:
    the loop's `getaddrinfo` then asks it through usernet's own UDP/TCP (usernet.aio.resolver),
    before those DHCP or router advertisements name; with `only` and none of these, names
    resolve from /etc/hosts and the `nameserver`s of /etc/resolv.conf, also through usernet.

    `dhcp` gets the address from a DHCP server on the link instead of `address`: the
    interface starts once it has a lease, with the lease's prefix, router (the gateway),
    MTU (when smaller) and DNS servers (the resolver's, after the one `dns` names); the lease
    is renewed while the program runs, a new one (another address) taken live, and it is
    released on exit (see usernet.drivers.dhcp).
    """

    tap: str = "usernet0"
    link: str | None = None
    dns: str | None = None
    address: str = DEFAULT_ADDRESS
    host_address: str | None = None
    gateway: str | None = None
    ipv6: bool = False
    mtu: int = 1500
    loop: LoopKind = "asyncio"
    pcap: str | None = None
    fault: str | None = None
    only: bool = False
    sandbox: bool = False
    offloads: bool = False
    no_gso: bool = False
    no_gro: bool = False
    handover: str | None = None
    dhcp: bool = False
    workers: int = 0
    worker: str | None = None

    def __post_init__(self) -> None:
        try:
            addresses = self.addresses
            if not addresses:
                raise ValueError(f"{self.address!r} has no address: give an IPv4 or IPv6 one (CIDR)")
            if self.host_address is not None:
                ipaddress.IPv4Interface(self.host_address)
            for gateway in self.gateways:
                if not any(gateway in a.network for a in addresses if a.version == gateway.version) and not (
                    gateway.version == 6 and gateway.is_link_local
                ):
                    raise ValueError(f"gateway {gateway} is not on usernet's networks ({self.address})")
            if len({g.version for g in self.gateways}) != len(self.gateways):
                raise ValueError(f"{self.gateway!r} names more than one gateway of a family")
        except ValueError as exc:
            raise ValueError(f"bad usernet address setting: {exc}") from None
        if self.loop not in LOOP_KINDS:
            raise ValueError(f"loop must be 'asyncio' or 'uvloop', not {self.loop!r}")
        if not 576 <= self.mtu <= 65535:
            raise ValueError(f"mtu must be between 576 and 65535, not {self.mtu}")
        if self.fault is not None:
            parse_fault(self.fault)
        if not isinstance(self.link_url, DeviceUrl):
            for name, value in (
                ("sandbox", self.sandbox),
                ("offloads", self.offloads),
                ("host_address", self.host_address),
                ("handover", self.handover),
            ):
                if value:
                    raise ValueError(f"{name} is about a TAP or TUN device and does not go with the link {self.link}")
        if self.dns is not None:
            _check_dns(self.dns)
        if self.handover is not None and self.sandbox:
            raise ValueError(
                "handover does not go with sandbox: the namespace and its TAP would die with the first process; "
                "make the namespace yourself and run each server in it with --handover (docs/migration.md)"
            )
        if self.handover is not None and self.dhcp:
            raise ValueError(
                "handover does not go with dhcp: the lease is the old process's, which releases it as it exits, "
                "and the successor runs no DHCP client to renew it; give both processes the same fixed --address"
            )
        if self.handover is not None and not any(a.version == 4 for a in self.addresses):
            raise ValueError("handover matches the old process and the new one by their IPv4 address: give one")
        if self.dhcp and self.gateway is not None:
            raise ValueError("dhcp learns the gateway from the DHCP server's router option: leave gateway out")

        if self.workers < 0:
            raise ValueError(f"workers must be 0 or more, not {self.workers}")
        if self.workers > 1 and self.handover is not None:
            raise ValueError("workers do not go with handover: each worker is its own stack (docs/workers.md)")
        if self.workers > 1 and (self.dhcp or not isinstance(self.link_url, TapUrl)):
            raise ValueError(
                "workers share one multi-queue TAP and one address: they go with a TAP (--tap NAME) and "
                "a fixed --address, not with another link or --dhcp"
            )
        if self.workers > 1 and self.wants_ipv6:
            raise ValueError(
                "workers speak IPv4 only for now: each worker's IPv6 would pick its own SLAAC and link-local "
                "addresses and run its own DAD (docs/workers.md); leave --ipv6 and IPv6 addresses out"
            )
        if self.workers > 1 and self.pcap is not None:
            raise ValueError("workers do not go with pcap: every worker would write the same file; capture on "
                             "the kernel side instead (tcpdump -i TAP)")  # fmt: skip
        if self.worker is not None:
            WorkerSeat.parse(self.worker)

    @property
    def supervises(self) -> bool:
        """True when this process is to start `workers` workers rather than serve itself."""
        return self.workers > 1 and self.worker is None

    @property
    def seat(self) -> WorkerSeat | None:
        """The queue this process serves as one of several workers (None: it is not a worker)."""
        return None if self.worker is None else WorkerSeat.parse(self.worker)

    @property
    def link_url(self) -> LinkUrl:
        """The link to open: `link` parsed, or the TAP `tap` when no `link` is given."""
        return TapUrl(self.tap) if self.link is None else parse_link_url(self.link)

    @property
    def addresses(self) -> tuple[ipaddress.IPv4Interface | ipaddress.IPv6Interface, ...]:
        """usernet's addresses with their networks: `address` is one CIDR or several, comma-separated
        (`--address` given several times), IPv4 and IPv6 alike."""
        return tuple(ipaddress.ip_interface(part.strip()) for part in self.address.split(",") if part.strip())

    @property
    def interface(self) -> ipaddress.IPv4Interface:
        """usernet's (first) IPv4 address with its network."""
        return next(a for a in self.addresses if isinstance(a, ipaddress.IPv4Interface))

    @property
    def gateways(self) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...]:
        """The default gateways, at most one per family (`--gateway` given once for each)."""
        if self.gateway is None:
            return ()
        return tuple(ipaddress.ip_address(part.strip()) for part in self.gateway.split(",") if part.strip())

    def gateway_of(self, version: int) -> str | None:
        return next((str(g) for g in self.gateways if g.version == version), None)

    @property
    def wants_ipv6(self) -> bool:
        """IPv6 runs with --ipv6 (link-local and SLAAC), or when an IPv6 address or gateway is given."""
        return self.ipv6 or any(a.version == 6 for a in self.addresses) or self.gateway_of(6) is not None

    @property
    def autoconfigures_ipv6(self) -> bool:
        """IPv6 runs on a link that carries router advertisements (not a TUN: no NDP on an IP-only link),
        so SLAAC may bring a router for global destinations."""
        return self.wants_ipv6 and not isinstance(self.link_url, TunUrl)

    def fault_options(self) -> dict[str, Any] | None:
        """FaultInjector keyword arguments, or None when no fault is configured."""
        return None if self.fault is None else parse_fault(self.fault)

    def replace(self, **changes: Any) -> UsernetConfig:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> UsernetConfig:
        """Defaults, then USERNET_* variables, then `overrides`."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for opt in _OPTIONS:
            text = env.get(opt.env)
            if text is not None:
                values[opt.field] = opt.convert(text, opt.env)
        values.update(overrides)
        return cls(**values)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> UsernetConfig:
        """The config from options added by `add_arguments` (their defaults already hold the environment)."""
        return cls(**{opt.field: getattr(args, opt.field) for opt in _OPTIONS})

    def to_env(self) -> dict[str, str]:
        """USERNET_* variables that make `from_env()` in a child process return this config."""
        env = {}
        for opt in _OPTIONS:
            value = getattr(self, opt.field)
            if value is None:
                continue
            env[opt.env] = ("1" if value else "0") if isinstance(value, bool) else str(value)
        return env


def _check_dns(text: str) -> None:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(f"dns must be the IPv4 or IPv6 address of a DNS server, not {text!r}") from None


@dataclass(frozen=True)
class _Option:
    field: str
    flag: str
    help: str
    kind: type = str
    choices: tuple[str, ...] = ()
    #: Raises ValueError for a value the option cannot take, so the command line says why at once.
    check: Callable[[str], object] | None = None
    #: May be given several times: the values are joined with commas (as the variable takes them).
    several: bool = False
    metavar: str | None = None  # the value's name in --help (argparse's default: the field in capitals)

    def argument_type(self) -> Callable[[str], Any]:
        """The `type=` for argparse: the value converted, or an error that keeps the check's message."""
        check = self.check
        if check is None:
            return self.kind

        def convert(text: str) -> Any:
            try:
                check(text)
            except ValueError as exc:
                raise argparse.ArgumentTypeError(str(exc)) from None
            return text

        return convert

    @property
    def env(self) -> str:
        return "USERNET_" + self.field.upper()

    def convert(self, text: str, origin: str) -> Any:
        if self.kind is bool:
            word = text.strip().lower()
            if word in _TRUE:
                return True
            if word in _FALSE:
                return False
            raise ValueError(f"{origin}={text!r}: write 1 or 0")
        if self.kind is int:
            try:
                return int(text)
            except ValueError:
                raise ValueError(f"{origin}={text!r} is not a whole number") from None
        if self.choices and text not in self.choices:
            raise ValueError(f"{origin}={text!r}: choose one of {', '.join(self.choices)}")
        return text


_OPTIONS: tuple[_Option, ...] = (
    _Option("tap", "--tap", "TAP device to create, or attach if it exists (default usernet0; --link wins)"),
    _Option("link", "--link", f"the link, by URL: {LINK_URL_FORMS} (default: the TAP of --tap)",
            check=parse_link_url),
    _Option("dns", "--dns", "DNS server whose answers getaddrinfo uses, asked through usernet (IPv4 or IPv6 address)",
            check=_check_dns),
    _Option("address", "--address",
            f"usernet's address, CIDR; give it again for more, IPv4 and IPv6 alike (default {DEFAULT_ADDRESS})",
            several=True),
    _Option("host_address", "--host-address",
            "address given to the kernel side of a TAP usernet creates, CIDR "
            f"(with --sandbox default {DEFAULT_HOST_ADDRESS})"),
    _Option("gateway", "--gateway",
            "default gateway for off-link destinations (then they go through usernet too); once per family",
            several=True),
    _Option("ipv6", "--ipv6",
            "IPv6 too: a link-local address and addresses from router advertisements (SLAAC); "
            "on by itself when an IPv6 address or gateway is given", bool),
    _Option("mtu", "--mtu", "IP MTU of the link (default 1500)", int),
    _Option("loop", "--loop", "base event loop for code that does not pick one (default asyncio)", str, LOOP_KINDS),
    _Option("pcap", "--pcap", "write every frame, both directions, to this pcap file"),
    _Option("fault", "--fault", "inject faults on the link, e.g. loss=0.01,delay=0.005,seed=1"),
    _Option("only", "--only",
            "usernet only: destinations off usernet's networks fail instead of using the kernel", bool),
    _Option("sandbox", "--sandbox",
            "create a throwaway network namespace with the TAP inside it and delete it on exit", bool),
    _Option("offloads", "--offloads",
            "open the TAP with vnet_hdr: checksum offload and TSO both ways (64 KB segments)", bool),
    _Option("no_gso", "--no-gso",
            "no software GSO: the stack builds every MTU-sized TCP frame itself (slower; the wire is the same)", bool),
    _Option("no_gro", "--no-gro",
            "no software GRO: the stack takes in every received TCP segment on its own (slower; same data)", bool),
    _Option("handover", "--handover",
            "take over the TAP, listeners and connections of the usernet process serving PATH (if one does; "
            "it then exits), and serve PATH for the next one: restarts without dropping a connection",
            metavar="PATH"),
    _Option("dhcp", "--dhcp",
            "get the address, gateway, MTU and DNS servers from a DHCP server on the link (--address is ignored)",
            bool),
    _Option("workers", "--workers",
            "run N worker processes, each its own stack and loop on one queue of a multi-queue TAP, all "
            "serving the same address (docs/workers.md; creating the TAP needs CAP_NET_ADMIN)", int, metavar="N"),
    _Option("worker", "--worker",
            "set by --workers for each worker it starts: the TAP queue it serves (INDEX/COUNT:FD:MAC)",
            check=WorkerSeat.parse, metavar="SEAT"),
)  # fmt: skip  # a table: one option a row, its help text under it


class _Several(argparse.Action):
    """An option given several times: the values joined with commas; the first one given replaces the default."""

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option_string: Any = None
    ) -> None:
        current = getattr(namespace, self.dest)
        setattr(namespace, self.dest, values if current is self.default or current is None else f"{current},{values}")


def add_arguments(parser: argparse.ArgumentParser, environ: Mapping[str, str] | None = None) -> None:
    """Add the link/loop options to `parser`, with defaults taken from USERNET_* variables."""
    env = os.environ if environ is None else environ
    defaults = UsernetConfig()
    group = parser.add_argument_group("usernet", "each option can also be set with the USERNET_<NAME> variable shown")
    for opt in _OPTIONS:
        text = env.get(opt.env)
        default = getattr(defaults, opt.field) if text is None else opt.convert(text, opt.env)
        help_text = f"{opt.help} [{opt.env}]"
        if opt.kind is bool:
            group.add_argument(opt.flag, dest=opt.field, action="store_true", default=default, help=help_text)
        elif opt.several:
            group.add_argument(opt.flag, dest=opt.field, action=_Several, default=default, help=help_text)
        else:
            group.add_argument(
                opt.flag,
                dest=opt.field,
                type=opt.argument_type(),
                choices=opt.choices or None,
                metavar=opt.metavar,
                default=default,
                help=help_text,
            )


def _stderr(message: str) -> None:
    print(f"usernet: {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def open_host(
    config: UsernetConfig,
    *,
    clock: Callable[[], float] = time.monotonic,
    purpose: str = "run",
    observe: Observer | None = None,
    announce: Callable[[str], None] = _stderr,
) -> Iterator[Host]:
    """Build the link (TAP or sandboxed TAP, pcap, faults, observer) and the interface; tear all down on exit.

    `clock` is the clock the driver hands to the stack (the loop's `time`): delayed
    frames in a FaultInjector are due on it. Capture files get wall-clock timestamps.
    """
    from usernet.drivers.host import Host, offload_options
    from usernet.link import FaultInjector, ObservedLink, PcapTap, PcapWriter, TapLink
    from usernet.link.udp import UdpLink
    from usernet.link.url import PacketUrl, UdpUrl
    from usernet.stack import Interface, InterfaceConfig

    if config.supervises:
        raise ValueError(
            "--workers starts worker processes and is for `python -m usernet` and `usernet run`; "
            "this command serves as one process: leave --workers out"
        )
    fault = config.fault_options()
    # Faults act on the frames the link hands over: per wire frame only without software
    # GRO, which would otherwise make one loss or reordering hit a whole merged run.
    gro = not config.no_gro and fault is None
    url = config.link_url
    with contextlib.ExitStack() as stack:
        link: Link
        if isinstance(url, UdpUrl):
            link = UdpLink(url.local, url.peer, mtu=config.mtu, gro=gro)
        elif isinstance(url, PacketUrl):
            from usernet.link.packet import PacketLink

            link = PacketLink(url.name)
            if link.mtu != config.mtu:
                link.close()
                raise ValueError(f"{url.name} has MTU {link.mtu}: give --mtu {link.mtu} (usernet's MTU is the link's)")
        elif (seat := config.seat) is not None:  # before `sandbox`: the supervisor made it
            from usernet.link.queue import QueueLink

            link = QueueLink.from_fd(
                seat.fd, url.name, mtu=config.mtu, mac=seat.mac, offloads=config.offloads, gso=not config.no_gso,
                gro=gro,
            )  # fmt: skip
        elif config.sandbox:
            from usernet.link.sandbox import Sandbox

            sandbox = stack.enter_context(Sandbox(purpose))
            host_address = config.host_address or DEFAULT_HOST_ADDRESS
            create = sandbox.create_tun if isinstance(url, TunUrl) else sandbox.create_tap
            device = create(
                url.name,
                mtu=config.mtu,
                host_address=host_address,
                offloads=config.offloads,
                gso=not config.no_gso,
                gro=gro,
                ipv6=config.wants_ipv6,  # the kernel side then speaks IPv6 too (its link-local address)
            )
            link = device
            announce(
                f"sandbox: namespace {sandbox.name}, {device.KIND} {url.name}, kernel side {host_address}; "
                f"try: ip netns exec {sandbox.name} ping {config.addresses[0].ip}"
            )
        else:
            from usernet.link.tun import TunLink

            kind = TunLink if isinstance(url, TunUrl) else TapLink
            device = kind.create(url.name, mtu=config.mtu, offloads=config.offloads, gso=not config.no_gso, gro=gro)
            link = device
            if config.host_address:
                configure_host_side(url.name, config.host_address, config.mtu)
            else:
                _warn_if_unreachable(device, config, announce)
        stack.callback(link.close)
        if config.pcap:
            from usernet.link.base import carries_ethernet
            from usernet.link.pcap import LINKTYPE_ETHERNET, LINKTYPE_RAW

            linktype = LINKTYPE_ETHERNET if carries_ethernet(link) else LINKTYPE_RAW
            writer = stack.enter_context(PcapWriter(config.pcap, linktype=linktype))
            link = PcapTap(link, writer, time.time)
        if fault is not None:
            link = FaultInjector(link, clock, **fault)
        if observe is not None:
            link = ObservedLink(link, observe, time.time)
        if not config.dhcp:
            seat = config.seat
            ports = {} if seat is None else {"ephemeral_ports": seat.ephemeral_ports}
            iface_config = InterfaceConfig.from_strings(
                link.mac,
                [str(a) for a in config.addresses],
                config.gateway_of(4),
                config.gateway_of(6),
                ipv6=config.wants_ipv6,
                mtu=config.mtu,
                **offload_options(link),
                **ports,
            )
            yield Host(link, Interface(iface_config))
            return
        yield _dhcp_host(link, config, clock, announce, stack)


def _dhcp_host(
    link: Link, config: UsernetConfig, clock: Callable[[], float], announce: Callable[[str], None],
    stack: contextlib.ExitStack,
) -> Host:  # fmt: skip
    """The Host of an interface whose address a DHCP server on `link` leased (see UsernetConfig.dhcp)."""
    from usernet.drivers.dhcp import DhcpAgent, acquire, describe_lease, lease_gateway, lease_mtu
    from usernet.drivers.host import Host, offload_options
    from usernet.stack import Interface, InterfaceConfig
    from usernet.stack.dhcp import DhcpClient
    from usernet.stack.route import format_ip

    client = DhcpClient(link.mac, hostname="usernet")
    lease = acquire(link, client, clock, DHCP_TIMEOUT)
    address = f"{format_ip(lease.address)}/{lease.prefix}"
    router = lease_gateway(lease)
    gateway = None if router is None else format_ip(router)
    mtu = lease_mtu(lease, config.mtu)
    iface_config = InterfaceConfig.from_strings(
        link.mac,
        [address, *(str(a) for a in config.addresses if a.version == 6)],
        gateway,
        config.gateway_of(6),
        ipv6=config.wants_ipv6,
        mtu=mtu,
        **offload_options(link),
    )
    host = Host(link, Interface(iface_config))
    agent = DhcpAgent(client, host, announce)
    host.agents.append(agent)

    def release() -> None:
        if host.failed is None:
            now = clock()
            agent.release(now)
            host.flush(now)

    stack.callback(release)
    announce(describe_lease(lease, mtu))
    return host


def _warn_if_unreachable(link: TapLink, config: UsernetConfig, announce: Callable[[str], None]) -> None:
    """Say so when the kernel's side of the TAP is down or has no address, and how to fix it.

    A TAP usernet just created has neither: until someone configures it, nothing can
    reach usernet, and nothing else would say why.
    """
    up, address = link.kernel_side()
    ipv4 = next((a for a in config.addresses if isinstance(a, ipaddress.IPv4Interface)), None)
    unaddressed = address is None and ipv4 is not None  # an IPv6-only usernet: only "down" is checked
    if up and not unaddressed:
        return
    usernet = ipv4 or config.addresses[0]
    other = next((host for host in usernet.network.hosts() if host != usernet.ip), None)
    kernel = f"{other}/{usernet.network.prefixlen}" if other is not None else "ADDRESS/PREFIX"
    missing = " and ".join(what for what, gap in (("down", not up), ("has no IPv4 address", unaddressed)) if gap)
    fix = [f"ip link set {link.name} up"]
    if unaddressed:
        fix.insert(0, f"ip addr add {kernel} dev {link.name}")
    announce(
        f"{link.KIND} {link.name} is {missing} on the kernel side, so nothing can reach usernet at {usernet.ip} "
        f"yet: configure it with `{' && '.join(fix)}` (or start with --host-address {kernel}, or use --sandbox)"
    )


def configure_host_side(tap: str, cidr: str, mtu: int) -> None:
    """Give the kernel's side of a TAP usernet created an address (in this process's namespace: the user asked)."""
    for cmd in (["ip", "addr", "add", cidr, "dev", tap], ["ip", "link", "set", tap, "mtu", str(mtu), "up"]):
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise OSError(f"`{' '.join(cmd)}` failed: {result.stderr.strip()}")
