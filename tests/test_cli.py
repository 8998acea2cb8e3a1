"""The jotguard command as operators use it: serve, token issue, keys, bad settings."""

from __future__ import annotations

import base64
import json
import threading

import pytest

from tests.cli import (
    CHEAP_ARGON2,
    Server,
    accepting,
    cli_env,
    free_port,
    http_get,
    in_flight,
    initialised,
    jotguard,
    jotguard_process,
    wait_until,
)

pytestmark = pytest.mark.slow


def header_of(token: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))


@pytest.fixture
def env(tmp_path):
    return initialised(cli_env(tmp_path / "data"))


def test_token_issue_prints_only_the_token(env):
    # In a process of its own: TOKEN=$(jotguard token issue ...) takes all it writes.
    result = jotguard_process("token", "issue", "--sub", "alice", "--scope", "a b", env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    assert lines[0].count(".") == 2
    assert header_of(lines[0])["typ"] == "at+jwt"


def test_token_ttl_beyond_the_maximum_is_refused(env):
    result = jotguard("token", "issue", "--sub", "a", "--ttl", "999999", env=env)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "--ttl" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("JOTGUARD_PORT", "eighty"),
        ("JOTGUARD_PORT", "70000"),
        ("JOTGUARD_SIGNING_ALG", "none"),
        ("JOTGUARD_SIGNING_ALG", "HS512"),
        ("JOTGUARD_ACCESS_TOKEN_TTL", "-5"),
        ("JOTGUARD_LEEWAY", "x"),
        ("JOTGUARD_ISSUER", "ftp://x/"),
        ("JOTGUARD_LOG_LEVEL", "LOUD"),
        ("JOTGUARD_HOST", "a b"),
    ],
)
def test_bad_setting_stops_startup_with_one_line(tmp_path, variable, value):
    assert_stops_with_one_line(jotguard, tmp_path, variable, value)


def test_bad_setting_stops_the_real_process_with_one_line(tmp_path):
    # What only a process shows: nothing else on stderr from imports or interpreter exit.
    assert_stops_with_one_line(jotguard_process, tmp_path, "JOTGUARD_PORT", "eighty")


def assert_stops_with_one_line(run, tmp_path, variable, value):
    env = cli_env(tmp_path / "data", **{variable: value})
    result = run("serve", env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert variable in lines[0]
    assert "Traceback" not in result.stderr


def test_bad_flag_names_the_flag(env):
    result = jotguard("serve", "--port", "nope", env=env)
    assert result.returncode == 2
    assert "--port" in result.stderr


def test_dotenv_file_is_read_and_env_and_flags_override_it(tmp_path):
    data = tmp_path / "data"
    env_file = tmp_path / "settings.env"
    env_file.write_text("JOTGUARD_AUDIENCE=from-file\nJOTGUARD_ACCESS_TOKEN_TTL=120\n")
    env = initialised(cli_env(data, JOTGUARD_ENV_FILE=str(env_file)))
    token = jotguard("token", "issue", "--sub", "a", env=env).stdout.strip()
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert claims["aud"] == "from-file"
    assert claims["exp"] - claims["iat"] == 120

    env["JOTGUARD_AUDIENCE"] = "from-env"
    token = jotguard("token", "issue", "--sub", "a", env=env).stdout.strip()
    assert json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))["aud"] == "from-env"

    token = jotguard("token", "issue", "--sub", "a", "--audience", "from-flag", env=env)
    claims = json.loads(base64.urlsafe_b64decode(token.stdout.split(".")[1] + "=="))
    assert claims["aud"] == "from-flag"


def test_keys_generate_rotate_list(env):
    kept = jotguard("keys", "generate", env=env)
    assert kept.returncode == 0
    assert kept.stdout.startswith("kept ")  # `jotguard init` made it
    first = kept.stdout.split()[1]

    staged = jotguard("keys", "rotate", env=env)
    assert staged.returncode == 0, staged.stderr
    upcoming = staged.stdout.strip()
    assert "JOTGUARD_KEY_PUBLISH_AHEAD=600" in staged.stderr
    listing = [line.split("\t") for line in jotguard("keys", "list", env=env).stdout.splitlines()]
    assert [(kid, state) for kid, _, state, _ in listing] == [
        (first, "current"),
        (upcoming, "next"),
    ]
    assert listing[0][3].startswith("signing since ")
    assert ", until " in listing[0][3]
    assert "signs from " in listing[1][3]

    emergency = jotguard("keys", "rotate", "--now", env=env)
    assert emergency.returncode == 0, emergency.stderr
    now = emergency.stdout.strip()
    assert f"jotguard keys remove -- {first}" in emergency.stderr
    listing = [line.split("\t") for line in jotguard("keys", "list", env=env).stdout.splitlines()]
    # The next key never signed anything: it goes with the emergency rotation.
    assert [(kid, state) for kid, _, state, _ in listing] == [(first, "retired"), (now, "current")]
    assert "accepted until" in listing[0][3]


def test_keys_remove_refuses_the_current_key_and_drops_a_retired_one(env):
    first = jotguard("keys", "generate", env=env).stdout.split()[1]
    # A kid is a base64url thumbprint: it may start with "-", hence the "--".
    refused = jotguard("keys", "remove", "--", first, env=env)
    assert refused.returncode == 2
    assert "rotate it out first" in refused.stderr
    jotguard("keys", "rotate", "--now", env=env)
    removed = jotguard("keys", "remove", "--", first, env=env)
    assert removed.returncode == 0, removed.stderr
    assert first not in jotguard("keys", "list", env=env).stdout
    unknown = jotguard("keys", "remove", "--", first, env=env)
    assert unknown.returncode == 1
    assert "no key" in unknown.stderr


def assert_authorized(url: str, token: str) -> None:
    # The refusal's reason says which check failed, should this ever flake under load.
    status, body, headers = http_get(url + "/test-auth", token)
    assert status == 200, (body, headers.get("WWW-Authenticate"), header_of(token))


def test_serve_end_to_end_with_rotation_and_sigterm(tmp_path):
    port = free_port()
    # As an operator runs it: the shipped argon2id parameters too.
    env = {k: v for k, v in cli_env(tmp_path / "data").items() if k not in CHEAP_ARGON2}
    server = Server(env, port)
    try:
        assert http_get(server.url + "/test")[:2] == (200, b"This is an unprotected route.")
        status, _, headers = http_get(server.url + "/test-auth")
        assert status == 401
        assert headers["WWW-Authenticate"].startswith('Bearer realm="jotguard"')

        issue = ("token", "issue", "--sub", "alice", "--port", str(port))
        before = jotguard(*issue, env=env).stdout.strip()
        assert_authorized(server.url, before)

        new_kid = jotguard("keys", "rotate", "--now", env=env).stdout.strip()
        after = jotguard(*issue, env=env).stdout.strip()
        assert header_of(after)["kid"] == new_kid
        # The server re-reads the keyring on the first unknown kid: no restart.
        assert_authorized(server.url, after)
        assert_authorized(server.url, before)
        jwks = json.loads(http_get(server.url + "/.well-known/jwks.json")[1])
        assert new_kid in {k["kid"] for k in jwks["keys"]}
        assert len(jwks["keys"]) == 2
        discovery = json.loads(http_get(server.url + "/.well-known/openid-configuration")[1])
        assert discovery["issuer"] == f"http://127.0.0.1:{port}/"
        assert discovery["jwks_uri"] == f"http://127.0.0.1:{port}/.well-known/jwks.json"
    finally:
        code, seconds, stderr = server.stop()
    assert code == 0, stderr
    assert seconds < 5
    assert "Traceback" not in stderr


def test_sigterm_lets_a_request_in_flight_finish(tmp_path):
    port = free_port()
    env = cli_env(tmp_path / "data")
    server = Server(env, port)
    import socket

    # A request whose body is still arriving when SIGTERM lands: routed, not finished.
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(b"POST /test HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n")
    assert wait_until(lambda: in_flight(server.url) == 1)
    stopper = threading.Thread(target=server.stop)
    stopper.start()
    assert wait_until(lambda: not accepting(port))  # SIGTERM taken: no new connections
    sock.sendall(b"hello")
    reply = sock.recv(4096)
    sock.close()
    stopper.join()
    assert reply.startswith(b"HTTP/1.1 405")
    assert server.process.returncode == 0
