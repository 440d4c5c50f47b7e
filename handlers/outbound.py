"""Which addresses an HTTP service may connect to: the outbound allow-list.

Event data fills paths, query values, headers and bodies, never the scheme, host
or port; but a catalog's host name can still resolve to an internal address (or
be made to, by DNS rebinding). So the address of every connection is checked
*after* resolution and *before* connecting, against the service's ``allow``:

==================  ==============================================================  ==========
class               addresses                                                       allowed by
==================  ==============================================================  ==========
loopback            127.0.0.0/8, ::1                                                loopback
link_local          169.254.0.0/16, fe80::/10, fd00:ec2::254 (cloud metadata)       link_local
private             10/8, 172.16/12, 192.168/16, 100.64/10 (CGNAT), fc00::/7        private
special             0.0.0.0/8, ::, multicast, 240.0.0.0/4, 255.255.255.255          networks only
==================  ==============================================================  ==========

Any address inside one of the service's ``networks`` (CIDR) is allowed whatever
its class. Everything else (public addresses) is allowed. An IPv4-mapped IPv6
address is judged as its IPv4 address. A refused connection is never opened: the
call fails with ``http.address_refused`` (not retried).

The policy of the call in progress travels in a context variable
(:data:`current_policy`), set by the adapter around each call, so one shared pool
serves services with different policies; a pooled connection is checked again
against the policy of the call that reuses it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import aiohttp

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_LINK_LOCAL = tuple(
    ipaddress.ip_network(cidr) for cidr in ("169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128")
)
_PRIVATE = tuple(
    ipaddress.ip_network(cidr)
    for cidr in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
)
_SPECIAL = tuple(
    ipaddress.ip_network(cidr)
    for cidr in (
        "0.0.0.0/8",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/128",
        "ff00::/8",
    )
)


def address_class(address: IPAddress) -> str | None:
    """The refused class an address belongs to, or None for a public address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return "loopback"
    # Link-local first: the metadata address fd00:ec2::254 is also inside fc00::/7,
    # and allowing private ranges must not open it.
    if any(address in network for network in _LINK_LOCAL):
        return "link_local"
    if any(address in network for network in _PRIVATE):
        return "private"
    if any(address in network for network in _SPECIAL):
        return "special"
    return None


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    """The addresses one service may connect to (the default refuses every internal one)."""

    loopback: bool = False
    private: bool = False
    link_local: bool = False
    networks: tuple[IPNetwork, ...] = ()

    def refusal(self, host: str) -> str | None:
        """Why a connection to the IP ``host`` is refused (its class), or None if allowed."""
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])  # drop an IPv6 zone id
        except ValueError:
            return "unparsable"
        if any(address in network for network in self.networks):
            return None
        kind = address_class(address)
        if kind is None or getattr(self, kind, False):
            return None
        return kind

    @classmethod
    def of(
        cls,
        *,
        loopback: bool = False,
        private: bool = False,
        link_local: bool = False,
        networks: Iterable[str | IPNetwork] = (),
    ) -> AddressPolicy:
        """Build a policy; ``networks`` are CIDR strings or network objects."""
        return cls(
            loopback=loopback,
            private=private,
            link_local=link_local,
            networks=tuple(ipaddress.ip_network(network) for network in networks),
        )


STRICT = AddressPolicy()
"""The product default: public addresses only."""

current_policy: ContextVar[AddressPolicy] = ContextVar("outbound_policy", default=STRICT)
"""The policy of the call in progress (the HTTP adapter sets it around each call)."""


class AddressRefusedError(OSError):
    """Every address of a host is outside the service's allow-list: nothing was connected."""

    def __init__(self, kind: str) -> None:
        super().__init__(f"the address is {kind}, which the service's allow list refuses")
        self.kind = kind


def refused_in(error: BaseException) -> AddressRefusedError | None:
    """The :class:`AddressRefusedError` behind ``error`` (aiohttp wraps it), if any."""
    seen: BaseException | None = error
    for _ in range(8):
        if seen is None:
            return None
        if isinstance(seen, AddressRefusedError):
            return seen
        nested = getattr(seen, "os_error", None)
        seen = nested if isinstance(nested, BaseException) else (seen.__cause__ or seen.__context__)
    return None


class PolicyConnector(aiohttp.TCPConnector):
    """aiohttp's connector, checking every resolved address before connecting.

    aiohttp resolves a name (or takes an IP literal) in ``_resolve_host`` and then
    connects to what it returned: filtering there means a refused address never
    sees a SYN. A pooled connection skips resolution, so :meth:`connect` checks its
    peer address against the policy of the call that takes it.
    """

    async def _resolve_host(self, host: str, port: int, traces: Any = None) -> Any:
        hosts = await super()._resolve_host(host, port, traces)
        policy = current_policy.get()
        allowed = [entry for entry in hosts if policy.refusal(entry["host"]) is None]
        if not allowed:
            raise AddressRefusedError(policy.refusal(hosts[0]["host"]) or "refused")
        return allowed

    async def connect(
        self,
        req: Any,
        traces: Any,
        timeout: Any,  # noqa: ASYNC109 - aiohttp's signature
    ) -> aiohttp.connector.Connection:
        connection = await super().connect(req, traces, timeout)
        transport = connection.transport
        peer = transport.get_extra_info("peername") if transport is not None else None
        if peer:
            kind = current_policy.get().refusal(str(peer[0]))
            if kind is not None:
                connection.close()
                raise aiohttp.ClientConnectorError(req.connection_key, AddressRefusedError(kind))
        return connection
