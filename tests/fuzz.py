"""``tox -e fuzz``: schemathesis against a live jotguard, checked against its own /openapi.json.

Starts ``jotguard serve`` on a free 127.0.0.1 port with a temporary data
directory and rate limits no run can spend, and runs schemathesis twice against it,
each time with a token carrying every scope the document names (so it gets past
authentication into the handlers, and can check that authentication is enforced):

- the **Bearer pass**: ``Authorization: Bearer <token>`` (subject ``fuzz``);
- the **DPoP pass**: ``Authorization: DPoP <token>``, a token bound to a key of the run
  (``jotguard token issue --dpop-jwk``, subject ``fuzz-dpop``), and a fresh proof by
  that key for each request's method and URL (``tests/fuzz_hooks.py``).

The hooks keep both tokens alive. Fails if schemathesis found anything, if the server
logged a traceback, an error line or a token, or if an operation never got past
authentication or the rate limit in the Bearer pass, or one that takes DPoP in the DPoP
pass (see :func:`never_reached`): a run that tested nothing behind them is not a pass.

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
from dataclasses import dataclass
from pathlib import Path

from backends.dpop import generate_key, public_jwk
from tests.conftest import GENEROUS_LIMITS
from tests.fuzz_dpop import takes_dpop
from tests.live import live_jotguard

ISSUER = "http://jotguard.fuzz/"
# A fresh seed each run (schemathesis prints it, and `st replay` reproduces a failure).
DEFAULT_ARGS = ["--max-examples", "100", "--workers", "1"]
HOOKS = Path(__file__).with_name("fuzz_hooks.py")
ROOT = Path(__file__).resolve().parents[1]
BEARER_SUBJECT = "fuzz"
DPOP_SUBJECT = "fuzz-dpop"
# Answers that say a request never got past authentication or the rate limit.
BLOCKED = frozenset({401, 403, 429})
_ACCESS_LINE = re.compile(
    r" jotguard\.access: (?P<method>[A-Z]+) (?P<route>\S+) (?P<status>\d{3}) "
)
_AUTH_FIELD = re.compile(r" auth=(\S+)")
_SUB_FIELD = re.compile(r" sub=(\S+)")

Operation = tuple[str, str]  # (method, path template)
Answer = tuple[int, str | None, str | None]  # (status, the auth outcome, the subject)


def scopes_in(document: dict[str, object]) -> list[str]:
    found: set[str] = set()
    for item in document["paths"].values():  # type: ignore[attr-defined]
        for operation in item.values():
            for requirement in operation.get("security", []) if isinstance(operation, dict) else []:
                for scopes in requirement.values():
                    found.update(scopes)
    return sorted(found)


def operations_in(document: dict[str, object], *, dpop: bool = False) -> dict[Operation, bool]:
    """Each operation of the document (with ``dpop``, each that takes DPoP), and whether
    it requires a token."""
    return {
        (method.upper(), path): bool(operation.get("security"))
        for path, item in document["paths"].items()  # type: ignore[attr-defined]
        for method, operation in item.items()
        if isinstance(operation, dict) and (not dpop or takes_dpop(operation))
    }


def answers_in(lines: Iterable[str]) -> dict[Operation, Counter[Answer]]:
    """(status, auth outcome, subject) per (method, route) from the server's access lines;
    the route is the path template, as in the document."""
    answers: dict[Operation, Counter[Answer]] = {}
    for line in lines:
        match = _ACCESS_LINE.search(line)
        if match:
            outcome = _AUTH_FIELD.search(line, match.end())
            sub = _SUB_FIELD.search(line, match.end())
            answer = (int(match["status"]), outcome and outcome[1], sub and sub[1])
            answers.setdefault((match["method"], match["route"]), Counter())[answer] += 1
    return answers


def never_reached(
    operations: dict[Operation, bool],
    answers: dict[Operation, Counter[Answer]],
    subject: str | None = None,
) -> list[Operation]:
    """The operations that never got past authentication or the rate limit: no answer
    other than 401, 403 or 429, or (with a token required) none authenticated (with
    ``subject``: as that subject, the token of one pass). A 400 for a malformed
    Authorization header is not past authentication."""
    return [
        operation
        for operation, needs_token in operations.items()
        if not any(
            status not in BLOCKED
            and (not needs_token or (outcome == "success" and subject in (None, sub)))
            for status, outcome, sub in answers.get(operation, ())
        )
    ]


def summary(
    operations: dict[Operation, bool], answers: dict[Operation, Counter[Answer]]
) -> list[str]:
    """One line per operation: how often each status came, and how many were authenticated
    as each subject (each pass's token)."""
    lines = []
    for operation in operations:
        seen = answers.get(operation, Counter())
        statuses: Counter[int] = Counter()
        subjects: Counter[str] = Counter()
        for (status, outcome, sub), n in seen.items():
            statuses[status] += n
            if outcome == "success":
                subjects[sub or "?"] += n
        text = " ".join(f"{status}x{n}" for status, n in sorted(statuses.items())) or "none"
        authenticated = ", ".join(f"{sub} {n}" for sub, n in sorted(subjects.items())) or "0"
        method, path = operation
        lines.append(f"  {method:6} {path:40} {text}  (authenticated: {authenticated})")
    return lines


def token_identity(token: str) -> list[str]:
    """The token and the claims that could revoke it: sub, client_id, jti."""
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return [token, *(str(claims[k]) for k in ("sub", "client_id", "jti") if k in claims)]


def issue_token(
    data_dir: Path, env: dict[str, str], scopes: list[str], subject: str, *extra: str
) -> str:
    """A token from ``jotguard token issue`` (``extra``: more of its arguments)."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "webapp",
            "token",
            "issue",
            "--sub",
            subject,
            "--scope",
            " ".join(scopes),
            *extra,
        ],
        env={**os.environ, **env, "JOTGUARD_DATA_DIR": str(data_dir)},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


@dataclass(frozen=True)
class Pass:
    """One schemathesis run: its token's scheme and subject, and what its hooks get."""

    name: str
    scheme: str
    subject: str
    token: str
    hook_env: dict[str, str]


def passes(data_dir: Path, env: dict[str, str], scopes: list[str]) -> list[Pass]:
    """The Bearer pass, and the DPoP pass: its token bound to a key of this run, whose
    private JWK its hooks get to sign each request's proof with."""
    bearer = issue_token(data_dir, env, scopes, BEARER_SUBJECT)
    key = generate_key("ES256")
    jwk_file = data_dir.parent / "dpop.pub.jwk"
    jwk_file.write_text(json.dumps(public_jwk(key)))
    dpop = issue_token(data_dir, env, scopes, DPOP_SUBJECT, "--dpop-jwk", str(jwk_file))
    # Neither token may be revoked by either pass: each would test nothing after it.
    keep = {"JOTGUARD_FUZZ_KEEP": json.dumps(token_identity(bearer) + token_identity(dpop))}
    dpop_env = {
        **keep,
        "JOTGUARD_FUZZ_DPOP": json.dumps({"token": dpop, "jwk": key.as_dict(private=True)}),
    }
    return [
        Pass("Bearer", "Bearer", BEARER_SUBJECT, bearer, keep),
        Pass("DPoP", "DPoP", DPOP_SUBJECT, dpop, dpop_env),
    ]


def schemathesis() -> str:
    beside = Path(sys.executable).with_name("schemathesis")
    found = str(beside) if beside.exists() else shutil.which("schemathesis")
    if found is None:
        raise SystemExit("fuzz: schemathesis is not installed (tox -e fuzz installs it)")
    return found


def problems_in(lines: list[str], tokens: Iterable[str]) -> list[str]:
    signatures = [token.rsplit(".", 1)[-1] for token in tokens]
    return [
        line.rstrip()
        for line in lines
        if "Traceback" in line or " ERROR " in line or any(s in line for s in signatures)
    ]


def run_pass(schema_url: str, run: Pass, argv: list[str]) -> int:
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
        # On the command line, not from the hooks: schemathesis takes only such a header
        # for real credentials (its auth checks strip it and expect a refusal).
        "--header",
        f"Authorization: {run.scheme} {run.token}",
        *(argv or DEFAULT_ARGS),
    ]
    hooks = {
        "SCHEMATHESIS_HOOKS": str(HOOKS),
        # The hooks import tests.fuzz_dpop from this tree.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        **run.hook_env,
    }
    print(f"+ [{run.name} pass] schemathesis run", schema_url, "--checks all ...", flush=True)
    return subprocess.run(command, env={**os.environ, **hooks}, check=False).returncode


def report_blocked(run: Pass, blocked: list[Operation]) -> None:
    print(
        f"fuzz: {len(blocked)} operation(s) never got past authentication or the rate"
        f" limit in the {run.name} pass (no answer but 401, 403, 429 or one not"
        f" authenticated as {run.subject}):",
        file=sys.stderr,
    )
    for method, path in blocked:
        print(f"  {method} {path}", file=sys.stderr)


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
            runs = passes(data_dir, env, scopes_in(document))
            statuses = [run_pass(schema_url, run, argv) for run in runs]
        status = next((s for s in statuses if s), 0)
        operations = operations_in(document)
        answers = answers_in(server.lines)
        print("answers per operation (status x count):")
        print("\n".join(summary(operations, answers)))
        problems = problems_in(server.lines, (run.token for run in runs))
        for line in problems:
            print("server log:", line, file=sys.stderr)
        if problems:
            print(f"fuzz: the server logged {len(problems)} bad line(s)", file=sys.stderr)
            status = status or 1
        # The Bearer pass on every operation; the DPoP pass on those that take DPoP.
        bearer, dpop = runs
        for run, scope in ((bearer, operations), (dpop, operations_in(document, dpop=True))):
            blocked = never_reached(scope, answers, run.subject)
            if blocked:
                report_blocked(run, blocked)
                status = status or 1
        return status
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
