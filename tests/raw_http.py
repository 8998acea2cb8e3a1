"""Reading an HTTP/1.1 answer off a raw connection, for tests that send bytes Tornado's
client would not (an oversized head, a body cut short, a slow sender)."""

from __future__ import annotations

import asyncio


async def read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    """The status code and the headers (names lower-cased) of the answer ``reader`` holds;
    the body stays unread."""
    status_line = await reader.readline()
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers
