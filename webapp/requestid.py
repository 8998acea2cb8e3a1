"""Request ids: the caller's ``X-Request-ID`` when it is sane, a fresh one otherwise."""

from __future__ import annotations

import os
import re

from tornado.httputil import HTTPServerRequest

HEADER = "X-Request-ID"

# Bounded length and a charset that cannot break a log line or a header.
_SANE = re.compile(r"[A-Za-z0-9._:+/=-]{1,128}")


def request_id(request: HTTPServerRequest) -> str:
    """The id to log and echo for ``request``: the caller's, or a new random one."""
    offered = request.headers.get(HEADER)
    if offered is not None and _SANE.fullmatch(offered):
        return offered
    # 128 random bits as uuid4().hex has them, without building a UUID (a quarter of the cost).
    return os.urandom(16).hex()
