"""``tox -e fuzz``: schemathesis against a live jotguard, checked against its own /openapi.json.

Starts ``jotguard serve`` on a free 127.0.0.1 port with a temporary data
directory and rate limits no run can spend, gives schemathesis a token carrying
every scope the document names (so it gets past authentication into the
handlers, and can check that authentication is enforced) and keeps that token
alive (``tests/fuzz_hooks.py``). Fails if schemathesis found anything, if the
server logged a traceback, an error line or the token, or if an operation never
got past authentication or the rate limit (see :func:`never_reached`): a run
that tested nothing behind them is not a pass.

Extra arguments go to ``schemathesis run`` (``tox -e fuzz -- --max-examples 500``).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from tests.conftest import GENEROUS_LIMITS
from tests.live import live_jotguard

ISSUER = "http://jotguard.fuzz/"
# A fresh seed each run (schemathesis prints it, and `st replay` reproduces a failure).
DEFAULT_ARGS = ["--max-examples", "100", "--workers", "1"]
HOOKS = Path(__file__).with_name("fuzz_hooks.py")
# Answers that say a request never got past authentication or the rate limit.
BLOCKED = frozenset({401, 403, 429})
_ACCESS_LINE = re.compile(
    r" jotguard\.access: (?P<method>[A-Z]+) (?P<route>\S+) (?P<status>\d{3}) "
)
_AUTH_FIELD = re.compile(r" auth=(\S+)")

Operation = tuple[str, str]  # (method, path template)
Answer = tuple[int, str | None]  # (status, the access line's auth outcome)


def scopes_in(document: dict[str, object]) -> list[str]:
    found: set[str] = set()
    for item in document["paths"].values():  # type: ignore[attr-defined]
        for operation in item.values():
            for requirement in operation.get("security", []) if isinstance(operation, dict) else []:
                for scopes in requirement.values():
                    found.update(scopes)
    return sorted(found)


def operations_in(document: dict[str, object]) -> dict[Operation, bool]:
    """Each operation of the document, and whether it requires a bearer token."""
    return {
        (method.upper(), path): bool(operation.get("security"))
        for path, item in document["paths"].items()  # type: ignore[attr-defined]
        for method, operation in item.items()
        if isinstance(operation, dict)
    }


def answers_in(lines: Iterable[str]) -> dict[Operation, Counter[Answer]]:
    """(status, auth outcome) per (method, route) from the server's access lines; the route
    is the path template, as in the document."""
    answers: dict[Operation, Counter[Answer]] = {}
    for line in lines:
        match = _ACCESS_LINE.search(line)
        if match:
            outcome = _AUTH_FIELD.search(line, match.end())
            answer = (int(match["status"]), outcome[1] if outcome else None)
            answers.setdefault((match["method"], match["route"]), Counter())[answer] += 1
    return answers


def never_reached(
    operations: dict[Operation, bool], answers: dict[Operation, Counter[Answer]]
) -> list[Operation]:
    """The operations that never got past authentication or the rate limit: no answer
    other than 401, 403 or 429, or (with a bearer token required) none authenticated.
    A 400 for a malformed Authorization header is not past authentication."""
    return [
        operation
        for operation, bearer in operations.items()
        if not any(
            status not in BLOCKED and (not bearer or outcome == "success")
            for status, outcome in answers.get(operation, ())
        )
    ]


def summary(
    operations: dict[Operation, bool], answers: dict[Operation, Counter[Answer]]
) -> list[str]:
    """One line per operation: how often each status came, and how many were authenticated."""
    lines = []
    for operation in operations:
        seen = answers.get(operation, Counter())
        statuses: Counter[int] = Counter()
        for (status, _), n in seen.items():
            statuses[status] += n
        text = " ".join(f"{status}x{n}" for status, n in sorted(statuses.items())) or "none"
        authenticated = sum(n for (_, outcome), n in seen.items() if outcome == "success")
        method, path = operation
        lines.append(f"  {method:6} {path:40} {text}  (authenticated: {authenticated})")
    return lines


def token_identity(token: str) -> list[str]:
    """The token and the claims that could revoke it: sub, client_id, jti."""
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return [token, *(str(claims[k]) for k in ("sub", "client_id", "jti") if k in claims)]


def issue_token(data_dir: Path, env: dict[str, str], scopes: list[str]) -> str:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "webapp",
            "token",
            "issue",
            "--sub",
            "fuzz",
            "--scope",
            " ".join(scopes),
        ],
        env={**os.environ, **env, "JOTGUARD_DATA_DIR": str(data_dir)},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


def schemathesis() -> str:
    beside = Path(sys.executable).with_name("schemathesis")
    found = str(beside) if beside.exists() else shutil.which("schemathesis")
    if found is None:
        raise SystemExit("fuzz: schemathesis is not installed (tox -e fuzz installs it)")
    return found


def problems_in(lines: list[str], token: str) -> list[str]:
    signature = token.rsplit(".", 1)[-1]
    return [
        line.rstrip()
        for line in lines
        if "Traceback" in line or " ERROR " in line or signature in line
    ]


def main(argv: list[str]) -> int:
    env = {
        "JOTGUARD_ISSUER": ISSUER,
        "JOTGUARD_SIGNING_ALG": "ES256",
        "JOTGUARD_CORS_ORIGINS": "https://app.example.com",
        # DEBUG: probes log their successes there, and every answer is counted below.
        "JOTGUARD_LOG_LEVEL": "DEBUG",
        **GENEROUS_LIMITS,
    }
    work = Path(tempfile.mkdtemp(prefix="jotguard-fuzz-"))
    try:
        data_dir = work / "data"
        with live_jotguard(data_dir, env) as server:
            schema_url = server.url + "openapi.json"
            with urllib.request.urlopen(schema_url, timeout=10) as response:  # noqa: S310
                document = json.load(response)
            token = issue_token(data_dir, env, scopes_in(document))
            command = [
                schemathesis(),
                "run",
                schema_url,
                "--checks",
                "all",
                # RFC 6749/7009 and the admin API answer 400 to requests that fit the schema
                # but not the facts (an unverifiable token, an expired exp, a bad grant):
                # "schema-valid means accepted" does not hold for an auth server.
                "--exclude-checks",
                "positive_data_acceptance",
                "--header",
                f"Authorization: Bearer {token}",
                *(argv or DEFAULT_ARGS),
            ]
            hooks = {
                "SCHEMATHESIS_HOOKS": str(HOOKS),
                "JOTGUARD_FUZZ_KEEP": json.dumps(token_identity(token)),
            }
            print("+ schemathesis run", schema_url, "--checks all ...", flush=True)
            status = subprocess.run(command, env={**os.environ, **hooks}, check=False).returncode
        operations = operations_in(document)
        answers = answers_in(server.lines)
        print("answers per operation (status x count):")
        print("\n".join(summary(operations, answers)))
        problems = problems_in(server.lines, token)
        for line in problems:
            print("server log:", line, file=sys.stderr)
        if problems:
            print(f"fuzz: the server logged {len(problems)} bad line(s)", file=sys.stderr)
            status = status or 1
        blocked = never_reached(operations, answers)
        if blocked:
            print(
                f"fuzz: {len(blocked)} operation(s) never got past authentication or the"
                " rate limit (no answer but 401, 403, 429 or an unauthenticated one):",
                file=sys.stderr,
            )
            for method, path in blocked:
                print(f"  {method} {path}", file=sys.stderr)
            status = status or 1
        return status
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
