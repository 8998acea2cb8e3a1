"""Issue 16's "must show" list, checked against a live ``jotguard serve`` on its defaults.

Every check starts its own server (shipped defaults and production argon2id, behind
``JOTGUARD_TRUSTED_PROXIES=127.0.0.1``, addresses in ``X-Forwarded-For`` unless the
check says otherwise) and prints what it saw and whether the claim holds. Figures
with a time in them depend on the machine's load, which is printed alongside.

    python -m bench.abuse_checks [--requests 30000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
from collections import Counter
from pathlib import Path

from bench.flood import (
    FORM,
    PASSWORD,
    Server,
    basic,
    bursts,
    form,
    garbage_token,
    load_average,
    memory_client_ids,
    one,
)

README = Path(__file__).resolve().parent.parent / "README.md"


def verdict(holds: bool, claim: str, seen: str) -> str:
    return f"[{'holds' if holds else 'DOES NOT HOLD'}] {claim}\n    {seen}"


async def rss_under_made_up_client_ids(requests: int) -> str:
    grown = await memory_client_ids(requests)
    return verdict(
        grown.after_mb - grown.before_mb <= 15,
        f"RSS grows <= 15 MB over {requests} requests with made-up client ids from one address",
        grown.line("seen", requests, "a request").replace("\n", ";"),
    )


async def burst_of_bad_client_credentials() -> str:
    secrets_burst, passwords_burst = await bursts()
    checked = secrets_burst.statuses.get(401, 0)
    holds = (
        checked <= 12
        and checked + secrets_burst.statuses.get(429, 0) == 60
        and secrets_burst.honest.status == 200
        and secrets_burst.honest.seconds <= 1.0
    )
    return verdict(
        holds,
        "60 concurrent bad client credentials from one address: at most 12 checked (401), the"
        " rest 429; client_credentials from another address during the burst: 200 within 1 s",
        f"{secrets_burst.line()}\n    (and {passwords_burst.line()})",
    )


async def password_budgets() -> str:
    server = await Server.start()
    try:
        server.add_user("alice")
        server.add_user("carol")
        client = basic(server.admin_id, server.admin_secret)

        async def login(username: str, password: str, address: str) -> int:
            headers = {**FORM, "Authorization": client, "X-Forwarded-For": address}
            body = form({"grant_type": "password", "username": username, "password": password})
            return (await one(server.url, "POST", "/oauth/token", headers, body)).status

        alice = [await login("alice", f"wrong-{n}", "203.0.113.5") for n in range(12)]
        carol = await login("carol", PASSWORD, "203.0.113.5")
        elsewhere = await login("alice", "wrong-again", "198.51.100.5")
    finally:
        await server.stop()
    return verdict(
        carol == 200 and elsewhere == 429,
        "after 12 wrong passwords for alice: carol's login through that client and address"
        " 200, alice from another address 429",
        f"alice x12: {alice}; carol: {carol}; alice from elsewhere: {elsewhere}",
    )


def admin_headers(server: Server) -> dict[str, str]:
    return {**FORM, "Authorization": basic(server.admin_id, server.admin_secret)}


async def admin_token(server: Server) -> str:
    """A client-credentials token of the server's first-start admin client."""
    body = form({"grant_type": "client_credentials"})
    issued = await one(server.url, "POST", "/oauth/token", admin_headers(server), body)
    token: str = json.loads(issued.body)["access_token"]
    return token


async def introspection() -> str:
    server = await Server.start()
    try:
        headers = {**admin_headers(server), "X-Forwarded-For": "192.0.2.80"}
        token = await admin_token(server)
        answers = [
            await one(server.url, "POST", "/oauth/introspect", headers, form({"token": token}))
            for _ in range(40)
        ]
    finally:
        await server.stop()
    codes = Counter(a.status for a in answers)
    median_ms = statistics.median(a.seconds for a in answers) * 1000
    active = all(json.loads(a.body).get("active") for a in answers if a.status == 200)
    return verdict(
        codes == Counter({200: 40}) and median_ms <= 50 and active,
        "a resource server introspects 40 times in a minute: 40 x 200, median <= 50 ms",
        f"statuses {dict(codes)}, all active: {active}, median {median_ms:.1f} ms"
        " (each on a new connection)",
    )


async def real_ip_header() -> str:
    server = await Server.start(JOTGUARD_CLIENT_IP_HEADER="x-real-ip")
    try:
        codes: Counter[int] = Counter()
        for n in range(25):
            headers = {
                "Authorization": f"Bearer {garbage_token()}",
                "X-Real-IP": "203.0.113.77",
                "X-Forwarded-For": f"10.{n}.0.1",
            }
            codes[(await one(server.url, "GET", "/test-auth", headers)).status] += 1
    finally:
        await server.stop()
    return verdict(
        codes[429] >= 10,
        "JOTGUARD_CLIENT_IP_HEADER=x-real-ip: 25 bad tokens, fixed X-Real-IP, varying XFF:"
        " >= 10 x 429",
        f"statuses {dict(codes)}",
    )


async def default_policy_off() -> str:
    server = await Server.start(JOTGUARD_RATELIMIT_DEFAULT="off")
    try:
        token = await admin_token(server)
        answer = await one(server.url, "GET", "/test-auth", {"Authorization": f"Bearer {token}"})
    finally:
        await server.stop()
    rate_headers = sorted(h for h in answer.headers if h.startswith("ratelimit"))
    return verdict(
        answer.status == 200 and not rate_headers,
        "JOTGUARD_RATELIMIT_DEFAULT=off: a protected route answers 200 with no RateLimit headers",
        f"status {answer.status}, RateLimit headers: {rate_headers or 'none'}",
    )


def readme_shows_56() -> str:
    text = README.read_text()
    row = next(line for line in text.splitlines() if "`--ratelimit-ipv6-prefix`" in line)
    return verdict("| `56` |" in row, "the README's settings table shows the /56 default", row)


async def main(args: argparse.Namespace) -> None:
    print(f"issue 16 checks; {load_average()}")
    checks = [
        lambda: rss_under_made_up_client_ids(args.requests),
        burst_of_bad_client_credentials,
        password_budgets,
        introspection,
        real_ip_header,
        default_policy_off,
    ]
    for check in checks:
        print(await check(), flush=True)
    print(readme_shows_56())
    print(f"done; {load_average()}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=30_000)
    asyncio.run(main(parser.parse_args()))
