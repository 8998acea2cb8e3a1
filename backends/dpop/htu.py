"""``htu`` against the request URI: RFC 3986 §6.2.2-6.2.3 normalisation, then equality.

Both sides lose their query and fragment (RFC 9449 §4.3), scheme and host are
lower-cased, a default port (``:80`` for http, ``:443`` for https) or an empty one
is dropped, an empty path becomes ``/``, percent-encoded unreserved characters are
decoded and other escapes upper-cased, and characters that cannot appear in a URI
(non-ASCII, space...) are percent-encoded as UTF-8, as RFC 3987 §3.1 maps an IRI.
A host written in Unicode (or percent-encoded UTF-8) is compared in its IDNA
(punycode) form; hosts with the four characters IDNA 2003 and 2008 map differently
(ß, ς, ZWJ, ZWNJ) never match, so a proof cannot be made to name two hosts.

Dot segments (``.``/``..``) are removed from ``htu`` only, as a client resolves its
URI before sending it. The request's own path is taken as the server routed it: a
request path with dot segments never matches, so a proof for ``/a`` cannot be
spent on ``/b/../a`` at whatever the router serves there.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import string

_DEFAULT_PORTS = {"http": 80, "https": 443}
_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")
# RFC 3986 pchar and "/", besides unreserved: left as they are.
_PATH_KEEP = frozenset("!$&'()*+,;=:@/")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_HOST = re.compile(r"[a-z0-9._~-]+")
_IDNA_DEVIATIONS = frozenset("\u00df\u03c2\u200c\u200d")
REQUEST_URLS_CACHED = 1024


def _path(path: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(path):
        char = path[i]
        if char == "%":
            match = _ESCAPE.match(path, i)
            if match is None:
                raise ValueError("has a malformed percent-escape")
            decoded = chr(int(match.group(1), 16))
            out.append(decoded if decoded in _UNRESERVED else "%" + match.group(1).upper())
            i += 3
            continue
        if char in _UNRESERVED or char in _PATH_KEEP:
            out.append(char)
        else:
            out.extend(f"%{byte:02X}" for byte in char.encode("utf-8"))
        i += 1
    return "".join(out) or "/"


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4, on a path that starts with "/"."""
    output: list[str] = []
    segments = path.split("/")[1:]
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == "..":
            if output:
                output.pop()
            if last:
                output.append("")
        elif segment == ".":
            if last:
                output.append("")
        else:
            output.append(segment)
    return "/" + "/".join(output)


def _host(raw: str) -> str:
    if raw.startswith("["):
        if not raw.endswith("]"):
            raise ValueError("has a malformed IP literal")
        try:
            return f"[{ipaddress.IPv6Address(raw[1:-1]).compressed}]"
        except ValueError:
            raise ValueError("has a malformed IP literal") from None
    if "%" in raw:
        try:
            raw = _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), raw)
            raw = raw.encode("latin-1").decode("utf-8")
        except (UnicodeError, ValueError):
            raise ValueError("has a malformed host") from None
        if "%" in raw:
            raise ValueError("has a malformed host")
    if not raw.isascii():
        if _IDNA_DEVIATIONS.intersection(raw.lower()):
            raise ValueError("has a host IDNA versions disagree on")
        try:
            raw = raw.encode("idna").decode("ascii")
        except UnicodeError:
            raise ValueError("has a host that is not a valid IDN") from None
    host = raw.lower()
    if not _HOST.fullmatch(host):
        raise ValueError("has a malformed host")
    return host


def _split(uri: str) -> tuple[str, str, str]:
    """(scheme, authority, path) of an absolute http(s) URI, query and fragment dropped."""
    uri = uri.partition("#")[0].partition("?")[0]
    scheme, sep, rest = uri.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in _DEFAULT_PORTS:
        raise ValueError("is not an absolute http(s) URI")
    authority, slash, path = rest.partition("/")
    return scheme, authority, slash + path


def _origin(scheme: str, authority: str) -> str:
    # User information ("user@") fails the host syntax below: it never matches.
    if authority.startswith("["):
        host, bracket, port = authority.partition("]")
        host += bracket
        if port and not port.startswith(":"):
            raise ValueError("has a malformed authority")
        port = port[1:]
    else:
        host, _, port = authority.partition(":")
    if port and (not port.isdigit() or not port.isascii() or int(port) > 65535):
        raise ValueError("has a malformed port")
    host = _host(host)
    if port and int(port) != _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}:{int(port)}"
    return f"{scheme}://{host}"


def normalize_htu(htu: str) -> str:
    """A proof's ``htu`` in normal form.

    :raises ValueError: not an absolute http(s) URI that can be compared.
    """
    scheme, authority, path = _split(htu)
    return _origin(scheme, authority) + _remove_dot_segments(_path(path))


@functools.lru_cache(maxsize=REQUEST_URLS_CACHED)
def normalize_request_uri(uri: str) -> str:
    """The request's absolute URI in normal form, its path as routed (see the module)."""
    scheme, authority, path = _split(uri)
    return _origin(scheme, authority) + _path(path)
