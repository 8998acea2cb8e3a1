"""``tox -e fuzz``: schemathesis against a live jotguard, checked against its own /openapi.json.

Starts ``jotguard serve`` on a free 127.0.0.1 port with a temporary data
directory, gives schemathesis a token carrying every scope the document names
(so it gets past authentication into the handlers, and can check that
authentication is enforced), then fails if schemathesis found anything, or if
the server logged a traceback, an error line or the token.

Extra arguments go to ``schemathesis run`` (``tox -e fuzz -- --max-examples 500``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

from tests.live import live_jotguard

ISSUER = "http://jotguard.fuzz/"
# A fresh seed each run (schemathesis prints it, and `st replay` reproduces a failure).
DEFAULT_ARGS = ["--max-examples", "100", "--workers", "1"]


def scopes_in(document: dict[str, object]) -> list[str]:
    found: set[str] = set()
    for item in document["paths"].values():  # type: ignore[attr-defined]
        for operation in item.values():
            for requirement in operation.get("security", []) if isinstance(operation, dict) else []:
                for scopes in requirement.values():
                    found.update(scopes)
    return sorted(found)


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
        "JOTGUARD_LOG_LEVEL": "INFO",
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
            print("+ schemathesis run", schema_url, "--checks all ...", flush=True)
            status = subprocess.run(command, check=False).returncode
        problems = problems_in(server.lines, token)
        for line in problems:
            print("server log:", line, file=sys.stderr)
        if problems:
            print(f"fuzz: the server logged {len(problems)} bad line(s)", file=sys.stderr)
            return status or 1
        return status
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
