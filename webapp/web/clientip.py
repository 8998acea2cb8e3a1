"""The client address a request is counted against.

Forwarding headers are anyone's to write, so one header, the one the trusted proxy
writes (``X-Forwarded-For`` by default, ``X-Real-IP`` or RFC 7239 ``Forwarded``), is
read, and only when the direct peer is a configured trusted proxy; any other
forwarding header is ignored, so a client cannot pick its address by sending the
header the proxy passes through unchanged. The chain is walked from the right (the
hop nearest to us) past every trusted proxy; the first untrusted address is the
client. Addresses further left were written by the client itself and are never
believed.

IPv6 clients are counted per network (a /56 by default, as express-rate-limit does):
one customer usually owns a whole /56 (or /64) and could otherwise rotate addresses
to get fresh budgets.
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


HEADERS = {"x-forwarded-for": "X-Forwarded-For", "x-real-ip": "X-Real-IP", "forwarded": "Forwarded"}


class ClientAddresses:
    """Finds a request's client address and the key it is counted under.

    ``header``: ``x-forwarded-for``, ``x-real-ip`` or ``forwarded``, the one header
    the trusted proxies write.
    """

    def __init__(
        self,
        trusted_proxies: Iterable[str | Network] = (),
        ipv6_prefix: int = 56,
        header: str = "x-forwarded-for",
    ) -> None:
        if not 1 <= ipv6_prefix <= 128:
            raise ValueError("ipv6_prefix must be from 1 to 128")
        if header not in HEADERS:
            raise ValueError(f"header must be one of {', '.join(HEADERS)}")
        self.trusted = tuple(
            ip_network(p, strict=False) if isinstance(p, str) else p for p in trusted_proxies
        )
        self.ipv6_prefix = ipv6_prefix
        self.header = HEADERS[header]

    def describe(self) -> str:
        """Where addresses come from, for the start-up log."""
        if not self.trusted:
            return "the connection's peer (no trusted proxies: forwarding headers are ignored)"
        proxies = ", ".join(str(n) for n in self.trusted)
        return f"{self.header} from the trusted proxies {proxies}, else the peer"

    def is_trusted(self, address: Address) -> bool:
        return any(address.version == n.version and address in n for n in self.trusted)

    def client(self, request: HTTPServerRequest) -> Address | None:
        """The client's address; None only when the peer's own address is unknown."""
        peer = parse_address(request.remote_ip)
        if peer is None or not self.is_trusted(peer):
            return peer
        values = request.headers.get_list(self.header)
        chain = _forwarded_for(values) if self.header == "Forwarded" else _comma_list(values)
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

    def forwarded_origin(self, request: HTTPServerRequest) -> tuple[str | None, str | None]:
        """The scheme and host the client reached the trusted proxy at, as that proxy
        says: the last ``proto=``/``host=`` of ``Forwarded`` when that is the configured
        header, else the last ``X-Forwarded-Proto``/``X-Forwarded-Host`` value (the one
        the nearest hop wrote). (None, None) when the peer is not a trusted proxy.
        """
        peer = parse_address(request.remote_ip)
        if peer is None or not self.is_trusted(peer):
            return None, None
        if self.header == "Forwarded":
            elements = [
                e for v in request.headers.get_list("Forwarded") for e in _split_unquoted(v, ",")
            ]
            if not elements:
                return None, None
            params = _parameters(elements[-1])
            return params.get("proto"), params.get("host")
        return _last(request.headers.get_list("X-Forwarded-Proto")), _last(
            request.headers.get_list("X-Forwarded-Host")
        )

    def key(self, request: HTTPServerRequest) -> str:
        """``"203.0.113.7"`` or ``"2001:db8:1:200::/56"``: what per-IP budgets are keyed by."""
        address = self.client(request)
        if address is None:
            return "unknown"
        return _address_key(address, self.ipv6_prefix)


@functools.lru_cache(maxsize=4096)
def _address_key(address: Address, ipv6_prefix: int) -> str:
    if isinstance(address, IPv6Address) and ipv6_prefix < 128:
        return str(ip_network((address, ipv6_prefix), strict=False))
    return str(address)


def _comma_list(values: list[str]) -> list[str]:
    return [entry.strip() for value in values for entry in value.split(",") if entry.strip()]


def _last(values: list[str]) -> str | None:
    entries = _comma_list(values)
    return entries[-1] if entries else None


def _parameters(element: str) -> dict[str, str]:
    """The ``name=value`` pairs of one RFC 7239 ``Forwarded`` element, names lower-cased."""
    params = {}
    for pair in _split_unquoted(element, ";"):
        name, sep, raw = pair.partition("=")
        if sep:
            params[name.strip().lower()] = _unquote(raw.strip())
    return params


def _forwarded_for(values: list[str]) -> list[str]:
    """The ``for=`` node of each element of RFC 7239 ``Forwarded`` values, in order.

    An element without ``for=`` gives ``""``: its hop named no address, so nothing left
    of it is believed (like ``unknown`` and obfuscated ``_identifiers``).
    """
    return [
        _parameters(element).get("for", "")
        for value in values
        for element in _split_unquoted(value, ",")
    ]


def _split_unquoted(text: str, separator: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return [part.strip() for part in parts if part.strip()]


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        inner = value[1:-1]
        out, escaped = [], False
        for char in inner:
            if char == "\\" and not escaped:
                escaped = True
                continue
            out.append(char)
            escaped = False
        return "".join(out)
    return value
