"""The tutorial's client-credentials exchange against an Auth0-like ``/oauth/token``.

Fixes the tutorial's handler, which answered a failed exchange with the HTTP
library's error object, request form and client secret included: here the
caller sees the upstream's OAuth error (scrubbed) or a gateway error, nothing else.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from tornado.httpclient import AsyncHTTPClient

from backends.errors import ExchangeFailed, ExchangeTimedOut, ExchangeUnreachable
from backends.outbound import UpstreamError, fetch_bounded

log = logging.getLogger("jotguard.token_exchange")

# RFC 6749 §5.2: error codes are drawn from a restricted printable set.
_ERROR_CODE = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]{1,64}")
_MAX_DESCRIPTION = 300


@dataclass(frozen=True, slots=True)
class ClientCredentials:
    token_url: str
    client_id: str
    audience: str
    client_secret: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class ExchangeResult:
    """What to answer: the upstream's status and a JSON object safe to forward."""

    status: int
    body: dict[str, Any]
    retry_after: str | None = None


class ClientCredentialsExchange:
    """POSTs ``grant_type=client_credentials`` with the configured client and audience."""

    def __init__(
        self,
        credentials: ClientCredentials,
        *,
        http_client: AsyncHTTPClient | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.credentials = credentials
        self.timeout = timeout
        self._http = http_client

    async def request_token(self) -> ExchangeResult:
        """The upstream's token response, or its OAuth error with the same 4xx status.

        :raises ExchangeFailed: unreachable, timed out or broken upstream.
        """
        creds = self.credentials
        form = urlencode(
            {
                "grant_type": "client_credentials",
                "client_id": creds.client_id,
                "client_secret": creds.client_secret,
                "audience": creds.audience,
            }
        )
        try:
            response = await fetch_bounded(
                self._http or AsyncHTTPClient(),
                creds.token_url,
                method="POST",
                body=form,
                headers={"Content-Type": "application/x-www-form-urlencoded"},
                timeout=self.timeout,
            )
        except UpstreamError as exc:
            log.warning("token endpoint %s: %s", creds.token_url, exc)
            if exc.timed_out:
                raise ExchangeTimedOut("The token endpoint did not answer in time") from None
            raise ExchangeUnreachable("The token endpoint cannot be reached") from None
        body = _json_object(response.body)
        if response.code == 200 and isinstance(body.get("access_token"), str):
            return ExchangeResult(200, body)
        if 400 <= response.code < 500 and _is_error_code(body.get("error")):
            log.warning(
                "token endpoint %s refused the exchange: HTTP %d %s",
                creds.token_url,
                response.code,
                body["error"],
            )
            return ExchangeResult(
                response.code, self._scrubbed_error(body), response.headers.get("Retry-After")
            )
        log.warning("token endpoint %s answered HTTP %d", creds.token_url, response.code)
        raise ExchangeFailed(
            f"The token endpoint answered HTTP {response.code} without a usable body"
        )

    def _scrubbed_error(self, body: dict[str, Any]) -> dict[str, Any]:
        """Only the RFC 6749 error fields, and never the client secret."""
        secret = self.credentials.client_secret
        scrubbed: dict[str, Any] = {"error": body["error"]}
        description = body.get("error_description")
        if isinstance(description, str):
            if secret and secret in description:
                description = description.replace(secret, "[redacted]")
            scrubbed["error_description"] = description[:_MAX_DESCRIPTION]
        uri = body.get("error_uri")
        if isinstance(uri, str) and uri.startswith("https://") and not (secret and secret in uri):
            scrubbed["error_uri"] = uri
        if secret and secret in scrubbed["error"]:
            scrubbed["error"] = "invalid_client"
        return scrubbed


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}


def _is_error_code(value: Any) -> bool:
    return isinstance(value, str) and _ERROR_CODE.fullmatch(value) is not None
