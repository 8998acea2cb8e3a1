"""One data directory, one issuer: the CLI acts on the server's, or refuses to act."""

from __future__ import annotations

import base64
import io
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.cli import CHEAP_ARGON2, cli_env, http_get, initialised, jotguard
from tests.conftest import GENEROUS_LIMITS
from tests.live import live_jotguard
from webapp.cli import main as cli
from webapp.service.datadir import ISSUER_FILE
from webapp.service.logs import configure_logging

pytestmark = pytest.mark.slow


def claims_of(token: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))


def without_data_dir(tmp_path: Path) -> dict[str, str]:
    env = cli_env(tmp_path / "unused")
    del env["JOTGUARD_DATA_DIR"]  # the default: ./var, in the working directory
    env["JOTGUARD_ENV_FILE"] = str(tmp_path.parent / "absent.env")
    return env


@pytest.mark.parametrize(
    "argv",
    [
        ("revoke", "--sub", "x"),
        ("token", "issue", "--sub", "x"),
        ("users", "disable", "alice"),
        ("users", "list"),
        ("clients", "add", "app"),
        ("keys", "list"),
        ("keys", "rotate"),
        ("keys", "generate"),
    ],
)
def test_commands_refuse_to_run_without_a_data_directory_and_create_nothing(tmp_path, argv):
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    done = jotguard(*argv, env=without_data_dir(workdir), cwd=workdir)
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert str(workdir / "var") in lines[0]
    assert "JOTGUARD_DATA_DIR" in lines[0]
    assert list(workdir.iterdir()) == []


def test_init_creates_the_directory_and_records_the_issuer(tmp_path):
    env = cli_env(tmp_path / "data", JOTGUARD_SIGNING_ALG="ES256")
    done = jotguard("init", "--port", "18001", env=env)
    assert done.returncode == 0, done.stderr
    assert "issuer: http://127.0.0.1:18001/" in done.stdout
    data = tmp_path / "data"
    assert data.stat().st_mode & 0o777 == 0o700
    assert json.loads((data / ISSUER_FILE).read_text()) == {"issuer": "http://127.0.0.1:18001/"}
    assert (data / ISSUER_FILE).stat().st_mode & 0o777 == 0o600
    assert (data / "keyring.json").exists()

    again = jotguard("init", "--port", "9999", env=env)
    assert again.returncode == 0
    assert again.stdout.startswith("kept ")
    # The record stands: a later command's --port does not move the issuer.
    token = jotguard("token", "issue", "--sub", "a", "--port", "9999", env=env).stdout
    assert claims_of(token)["iss"] == "http://127.0.0.1:18001/"


def test_an_explicit_issuer_replaces_the_recorded_one_and_says_so(tmp_path):
    env = initialised(cli_env(tmp_path / "data", JOTGUARD_SIGNING_ALG="ES256"))
    env["JOTGUARD_ISSUER"] = "https://auth.example.com/"
    done = jotguard("token", "issue", "--sub", "a", env=env)
    assert done.returncode == 0, done.stderr
    assert claims_of(done.stdout)["iss"] == "https://auth.example.com/"
    assert "replaces the issuer recorded" in done.stderr


def test_a_directory_without_a_recorded_issuer_is_refused_until_serve_records_one(tmp_path):
    data = tmp_path / "data"
    env = initialised(cli_env(data, JOTGUARD_SIGNING_ALG="ES256"))
    (data / ISSUER_FILE).unlink()  # as an older jotguard left it
    refused = jotguard("token", "issue", "--sub", "a", env=env)
    assert refused.returncode == 2
    assert "records no issuer" in refused.stderr
    with live_jotguard(data):
        pass
    assert json.loads((data / ISSUER_FILE).read_text()) == {"issuer": "http://127.0.0.1:0/"}
    assert jotguard("token", "issue", "--sub", "a", env=env).returncode == 0


def test_init_warns_about_a_wildcard_issuer(tmp_path):
    done = jotguard("init", "--host", "0.0.0.0", env=cli_env(tmp_path / "data"))  # noqa: S104
    assert done.returncode == 0, done.stderr
    assert "http://0.0.0.0:8888/" in done.stderr
    assert "JOTGUARD_ISSUER" in done.stderr


def test_serve_warns_about_a_wildcard_issuer(tmp_path, monkeypatch):
    started = []  # nothing listens: the test stops before the service would start
    monkeypatch.setattr(
        "webapp.service.server.run_service", lambda settings: started.append(settings)
    )
    logged = io.StringIO()
    monkeypatch.setattr(
        cli, "configure_logging", lambda level, fmt: configure_logging(level, fmt, logged)
    )
    monkeypatch.setenv("JOTGUARD_ENV_FILE", str(tmp_path / "absent.env"))
    monkeypatch.setenv("JOTGUARD_SIGNING_ALG", "ES256")
    argv = ["serve", "--host", "::", "--data-dir", str(tmp_path / "data")]
    assert cli.main(argv) == 0
    assert started[0].issuer_url == "http://[::]:8888/"
    warning = [line for line in logged.getvalue().splitlines() if "WARNING" in line]
    assert len(warning) == 1
    assert "http://[::]:8888/ names a wildcard address" in warning[0]
    assert "set JOTGUARD_ISSUER" in warning[0]


def _password_grant(url: str, client: dict, username: str, password: str) -> dict:
    body = urllib.parse.urlencode(
        {"grant_type": "password", "username": username, "password": password}
    ).encode()
    request = urllib.request.Request(url + "oauth/token", data=body)  # noqa: S310
    credentials = f"{client['client_id']}:{client['client_secret']}".encode()
    request.add_header("Authorization", "Basic " + base64.b64encode(credentials).decode())
    request.add_header("Content-Type", "application/x-www-form-urlencoded")
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return json.loads(response.read())


def test_cli_without_port_issues_and_disables_for_the_issuer_the_server_uses(tmp_path):
    data = tmp_path / "data"
    settings = {**CHEAP_ARGON2, **GENEROUS_LIMITS}
    # Port 0: the issuer the server records is not the CLI's default http://127.0.0.1:8888/.
    with live_jotguard(data, settings) as server:
        env = cli_env(data, JOTGUARD_SIGNING_ALG="ES256", **settings)
        issued = jotguard("token", "issue", "--sub", "ops", env=env)
        assert issued.returncode == 0, issued.stderr
        assert http_get(server.url + "test-auth", issued.stdout.strip())[0] == 200

        added = jotguard(
            "clients", "add", "app", "--grant", "password", "--scope", "read:x", env=env
        )
        client = json.loads(added.stdout)
        jotguard(
            "users", "add", "alice", "--scope", "read:x", "--password-stdin",
            input="correct horse\n", env=env,
        )  # fmt: skip
        access = _password_grant(server.url, client, "alice", "correct horse")["access_token"]
        assert http_get(server.url + "test-auth", access)[0] == 200

        disabled = jotguard("users", "disable", "alice", env=env)
        assert disabled.returncode == 0, disabled.stderr
        deadline = time.monotonic() + 10
        while (answer := http_get(server.url + "test-auth", access))[0] == 200:
            assert time.monotonic() < deadline, "alice's token still accepted"
            time.sleep(0.02)
        status, _, headers = answer
        assert status == 401
        assert 'error="invalid_token"' in headers["WWW-Authenticate"]
        with pytest.raises(urllib.error.HTTPError) as refused:
            _password_grant(server.url, client, "alice", "correct horse")
        assert json.loads(refused.value.read())["error"] == "invalid_grant"
