"""Outbound HTTP to an issuer: URL policy, timeouts, a body-size cap, one error type.

Both the JWKS key source and the client-credentials exchange call remote
issuers; they share this one way of doing it so that every outbound call has a
timeout, never buffers an unbounded body, never follows a redirect, and fails
with a message that is safe to log (no request body, so no client secret).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.simple_httpclient import HTTPTimeoutError

MAX_BODY_BYTES = 1 << 20
USER_AGENT = "jotguard"


def is_loopback_host(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def secure_url(raw: str) -> str:
    """``raw`` if it is https, or http to a loopback host (tests, a sidecar issuer).

    :raises ValueError: with a one-line reason.
    """
    url = raw.strip()
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ValueError("must be an https URL") from None
    if parts.scheme not in {"http", "https"} or not host:
        raise ValueError("must be an https URL")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not carry credentials")
    if parts.fragment:
        raise ValueError("must not have a #fragment")
    if parts.scheme == "http" and not is_loopback_host(host):
        raise ValueError("must be https (plain http only for localhost/127.0.0.1/::1)")
    return url


_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(url: str) -> tuple[str, str, int]:
    """RFC 6454 origin of an http(s) URL: scheme, host and port, default port filled in."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS.get(scheme, 0)


def same_origin(a: str, b: str) -> bool:
    try:
        return origin(a) == origin(b)
    except ValueError:  # a malformed port
        return False


class UpstreamError(Exception):
    """The upstream gave no usable HTTP answer. ``str()`` is safe to log and to show."""

    def __init__(self, reason: str, *, timed_out: bool = False) -> None:
        super().__init__(reason)
        self.timed_out = timed_out


@dataclass(frozen=True, slots=True)
class UpstreamResponse:
    code: int
    headers: Mapping[str, str]
    body: bytes


async def fetch_bounded(
    client: AsyncHTTPClient,
    url: str,
    *,
    timeout: float,
    method: str = "GET",
    body: str | None = None,
    headers: Mapping[str, str] | None = None,
    max_bytes: int = MAX_BODY_BYTES,
) -> UpstreamResponse:
    """One request with connect and total timeouts; any status code is returned.

    The body is collected while streaming and the call fails once it exceeds
    ``max_bytes``, so a misconfigured URL serving a huge file cannot fill memory.

    :raises UpstreamError: unreachable, timed out, connection lost, or too large.
    """
    received = bytearray()
    too_large = False

    def collect(chunk: bytes) -> None:
        nonlocal too_large
        if too_large:
            return  # keep draining to the timeout, but hold nothing
        if len(received) + len(chunk) > max_bytes:
            too_large = True
            received.clear()
            return
        received.extend(chunk)

    request = HTTPRequest(
        url,
        method=method,
        body=body,
        headers={"Accept": "application/json", **(headers or {})},
        connect_timeout=timeout,
        request_timeout=timeout,
        follow_redirects=False,
        user_agent=USER_AGENT,
        streaming_callback=collect,
    )
    try:
        response = await client.fetch(request, raise_error=False)
    except HTTPTimeoutError:
        raise UpstreamError(f"timed out after {timeout:g}s", timed_out=True) from None
    except HTTPClientError as exc:
        if too_large:
            raise UpstreamError(_too_large(max_bytes)) from None
        timed_out = exc.code == 599 and "timeout" in str(exc).lower()
        raise UpstreamError(f"request failed: {exc.message}", timed_out=timed_out) from None
    except OSError as exc:
        raise UpstreamError(f"unreachable: {exc.strerror or type(exc).__name__}") from None
    if too_large:
        raise UpstreamError(_too_large(max_bytes))
    return UpstreamResponse(response.code, dict(response.headers), bytes(received))


def _too_large(max_bytes: int) -> str:
    return f"the response is larger than {max_bytes // 1024} KiB"
