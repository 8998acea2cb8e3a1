"""The client address a request is counted against.

``X-Forwarded-For`` and ``X-Real-IP`` are anyone's to write, so they are read
only when the direct peer is a configured trusted proxy. Then the chain is
walked from the right (the hop nearest to us) past every trusted proxy; the
first untrusted address is the client. Addresses further left were written by
the client itself and are never believed.

IPv6 clients are counted per network (a /64 by default): one host usually owns
a whole /64 and could otherwise rotate addresses to get fresh budgets.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

from tornado.httputil import HTTPServerRequest

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network


def parse_networks(raw: str) -> tuple[Network, ...]:
    """``"10.0.0.0/8, 192.0.2.7, 2001:db8::/32"`` as networks (a bare address is a /32 or /128).

    :raises ValueError: an entry that is neither an address nor a network.
    """
    networks = []
    for entry in raw.split(","):
        entry = entry.strip()
        if not entry:
            continue
        try:
            networks.append(ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(
                f"{entry!r} is not an IP address or CIDR network (separate entries with commas)"
            ) from None
    return tuple(networks)


# Cached: a client sends many requests from one address, and ipaddress parsing in
# pure Python cost more than the rest of the rate-limit key. Addresses are immutable.
@functools.lru_cache(maxsize=4096)
def parse_address(text: str | None) -> Address | None:
    """An address as proxies write it (``a.b.c.d``, ``a.b.c.d:port``, ``[v6]:port``), or None."""
    if not text:
        return None
    value = text.strip()
    if value.startswith("["):
        value = value[1 : value.find("]")] if "]" in value else ""
    elif value.count(":") == 1:
        value = value.split(":", 1)[0]
    value = value.split("%", 1)[0]  # an IPv6 zone is local to the peer's host
    try:
        address = ip_address(value)
    except ValueError:
        return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class ClientAddresses:
    """Finds a request's client address and the key it is counted under."""

    def __init__(
        self, trusted_proxies: Iterable[str | Network] = (), ipv6_prefix: int = 64
    ) -> None:
        if not 1 <= ipv6_prefix <= 128:
            raise ValueError("ipv6_prefix must be from 1 to 128")
        self.trusted = tuple(
            ip_network(p, strict=False) if isinstance(p, str) else p for p in trusted_proxies
        )
        self.ipv6_prefix = ipv6_prefix

    def is_trusted(self, address: Address) -> bool:
        return any(address.version == n.version and address in n for n in self.trusted)

    def client(self, request: HTTPServerRequest) -> Address | None:
        """The client's address; None only when the peer's own address is unknown."""
        peer = parse_address(request.remote_ip)
        if peer is None or not self.is_trusted(peer):
            return peer
        chain = _header_chain(request, "X-Forwarded-For") or _header_chain(request, "X-Real-IP")
        hop = peer
        for entry in reversed(chain):
            address = parse_address(entry)
            if address is None:
                # Not an address where the trusted hop put one: believe nothing
                # further left and count the request against that hop.
                return hop
            if not self.is_trusted(address):
                return address
            hop = address
        return hop

    def key(self, request: HTTPServerRequest) -> str:
        """``"203.0.113.7"`` or ``"2001:db8:1:2::/64"``: what per-IP budgets are keyed by."""
        address = self.client(request)
        if address is None:
            return "unknown"
        return _address_key(address, self.ipv6_prefix)


@functools.lru_cache(maxsize=4096)
def _address_key(address: Address, ipv6_prefix: int) -> str:
    if isinstance(address, IPv6Address) and ipv6_prefix < 128:
        return str(ip_network((address, ipv6_prefix), strict=False))
    return str(address)


def _header_chain(request: HTTPServerRequest, name: str) -> list[str]:
    return [
        entry.strip()
        for value in request.headers.get_list(name)
        for entry in value.split(",")
        if entry.strip()
    ]
