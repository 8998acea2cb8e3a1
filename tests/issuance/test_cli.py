"""``jotguard clients`` and ``jotguard users`` against the store a running server uses."""

from __future__ import annotations

import asyncio
import getpass
import io
import json
import sys

import pytest

from tests.issuance.conftest import PASSWORD, body, deferred
from webapp.cli.main import main


async def add_alice(cli, scope="read:catchphrases write:catchphrases"):
    code, out, err = await cli(
        "users", "add", "alice", "--scope", scope, "--password-stdin", stdin=PASSWORD + "\n"
    )
    assert code == 0, err
    return json.loads(out)


async def add_client(cli, *extra):
    code, out, err = await cli(
        "clients",
        "add",
        "webapp",
        "--scope",
        "read:catchphrases write:catchphrases delete:catchphrases",
        *extra,
    )
    assert code == 0, err
    return json.loads(out)


async def test_clients_add_prints_one_json_object_whose_credentials_work(cli, token_request):
    code, out, err = await cli("clients", "add", "reporting", "--scope", "read:catchphrases")

    assert code == 0, err
    created = json.loads(out)  # exactly one JSON document on stdout
    assert set(created) == {"client_id", "client_secret"}
    response = await token_request(
        {"grant_type": "client_credentials"},
        client=(created["client_id"], created["client_secret"]),
    )
    assert response.code == 200
    assert body(response)["scope"] == "read:catchphrases"


async def test_clients_list_shows_grants_and_scopes_but_no_secret(cli):
    created = await add_client(cli, "--grant", "password,refresh_token")

    code, out, _ = await cli("clients", "list")

    assert code == 0
    (line,) = out.splitlines()
    client_id, name, state, grants, scopes = line.split("\t")
    assert (client_id, name, state) == (created["client_id"], "webapp", "active")
    assert grants == "password,refresh_token"
    assert scopes == "delete:catchphrases read:catchphrases write:catchphrases"
    assert created["client_secret"] not in out
    assert "argon2" not in out


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["clients", "add", "x", "--grant", "implicit"], "unknown grant type 'implicit'"),
        (["clients", "add", "x", "--grant", ""], "at least one grant type"),
        (["clients", "add", "x", "--scope", 'a "b"'], "invalid scope"),
        (["clients", "add", "bad name"], "NAME must be"),
        (["users", "add", "-x", "--password-stdin"], "expected one argument"),
    ],
)
async def test_bad_arguments_exit_2(argv, needle, cli):
    with pytest.raises(SystemExit) as exited:
        await cli(*argv)
    assert exited.value.code == 2


async def test_duplicate_client_name_exits_1(cli):
    await add_client(cli)
    code, out, err = await cli("clients", "add", "webapp")
    assert code == 1
    assert "exists" in err
    assert out == ""


async def test_users_add_from_stdin_then_password_grant_then_scopes(cli, token_request, fetch):
    """Must show: users add alice, a password grant, GET 200 and DELETE 403."""
    await add_alice(cli)
    client = await add_client(cli, "--grant", "password,refresh_token")

    response = await token_request(
        {"grant_type": "password", "username": "alice", "password": PASSWORD},
        client=(client["client_id"], client["client_secret"]),
    )
    assert response.code == 200
    tokens = body(response)
    assert tokens["access_token"]
    assert tokens["refresh_token"]

    access = tokens["access_token"]
    assert (await fetch("/api/catchphrases", token=access)).code == 200
    deleted = await fetch("/api/catchphrases/anything", method="DELETE", token=access)
    assert deleted.code == 403
    assert body(deleted)["error"] == "insufficient_scope"


async def test_users_list_and_duplicates(cli):
    created = await add_alice(cli)
    code, out, _ = await cli("users", "list")
    assert code == 0
    assert out.splitlines() == [
        f"{created['user_id']}\talice\tactive\tread:catchphrases write:catchphrases"
    ]
    again = await cli("users", "add", "alice", "--password-stdin", stdin=PASSWORD)
    assert again[0] == 1
    assert "exists" in again[2]


async def test_users_add_without_a_terminal_needs_password_stdin(cli):
    code, _out, err = await cli("users", "add", "alice")
    assert code == 2
    assert "--password-stdin" in err


async def test_users_add_prompts_twice_on_a_terminal(cli, monkeypatch, issuance):
    answers = iter([PASSWORD, PASSWORD])
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": next(answers))
    tty = io.StringIO()
    tty.isatty = lambda: True  # type: ignore[method-assign]
    monkeypatch.setattr(sys, "stdin", tty)
    code = await asyncio.to_thread(main, ["users", "add", "alice"])
    assert code == 0
    assert await issuance.store.get_user_by_name("alice") is not None


async def test_users_add_refuses_mismatched_prompts(cli, monkeypatch):
    answers = iter([PASSWORD, PASSWORD + "x"])
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": next(answers))
    tty = io.StringIO()
    tty.isatty = lambda: True  # type: ignore[method-assign]
    monkeypatch.setattr(sys, "stdin", tty)
    assert await asyncio.to_thread(main, ["users", "add", "alice"]) == 2


@pytest.mark.parametrize("password", ["short", "x" * 1025, ""])
async def test_users_add_refuses_unacceptable_passwords(password, cli):
    code, _, err = await cli("users", "add", "alice", "--password-stdin", stdin=password + "\n")
    assert code == 2
    assert "characters" in err


async def test_users_disable_revokes_live_tokens_and_blocks_new_ones(cli, token_request, fetch):
    """Must show: users disable alice -> alice's live access token -> 401."""
    await add_alice(cli)
    client = await add_client(cli, "--grant", "password,refresh_token")
    credentials = (client["client_id"], client["client_secret"])
    login = {"grant_type": "password", "username": "alice", "password": PASSWORD}
    tokens = body(await token_request(login, client=credentials))
    assert (await fetch("/test-auth", token=tokens["access_token"])).code == 200

    code, _out, err = await cli("users", "disable", "alice")

    assert code == 0, err
    # The server's revocation mirror picks the CLI's write up on its next poll (every 1 s).
    for _ in range(300):
        revoked = await fetch("/test-auth", token=tokens["access_token"])
        if revoked.code == 401:
            break
        await asyncio.sleep(0.02)
    assert revoked.code == 401
    assert "revoked" in revoked.headers["WWW-Authenticate"]
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    assert body(await token_request(refresh, client=credentials))["error"] == "invalid_grant"
    assert (await token_request(login, client=credentials)).code == 400

    # Enabled again, alice may log in, once the disable's cutoff no longer covers what
    # is signed now (tokens stamped up to the clock leeway after it): until then, 503.
    assert (await cli("users", "enable", "alice"))[0] == 0
    assert deferred(await token_request(login, client=credentials))


async def test_users_disable_unknown_user_exits_1(cli):
    code, _, err = await cli("users", "disable", "nobody")
    assert code == 1
    assert "no user named 'nobody'" in err


async def test_cli_store_outage_exits_1(cli, tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("JOTGUARD_ISSUANCE_STORE", f"sqlite:///{blocker}/x.db")
    code, _, err = await cli("clients", "list")
    assert code == 1
    assert "cannot answer" in err


@pytest.mark.parametrize(
    ("variable", "argv"),
    [
        ("JOTGUARD_ISSUANCE_STORE", ["clients", "add", "x"]),
        ("JOTGUARD_ISSUANCE_STORE", ["users", "list"]),
        ("JOTGUARD_REVOCATION_STORE", ["users", "disable", "alice"]),
    ],
)
async def test_cli_refuses_process_local_stores(variable, argv, cli, monkeypatch, issuance):
    await add_alice(cli)
    monkeypatch.setenv(variable, "memory://")
    code, out, err = await cli(*argv)
    assert code == 2
    assert "memory://" in err
    assert out == ""
    assert not (await issuance.store.get_user_by_name("alice")).disabled


async def test_only_clients_add_makes_the_client_secret_key(cli, data_dir):
    # No server runs here: listing and user commands create nothing as a side effect.
    key = data_dir / "client-secret.key"
    await add_alice(cli)
    assert (await cli("clients", "list"))[0] == 0
    assert (await cli("users", "list"))[0] == 0
    assert not key.exists()
    await add_client(cli)
    assert key.stat().st_mode & 0o777 == 0o600


# -- the rest of the lifecycle: delete, passwd; clients disable, enable, delete, rotate-secret --


async def refused_soon(fetch, token) -> bool:
    """Whether the server refuses ``token`` once its mirror took the CLI's write."""
    for _ in range(500):
        if (await fetch("/test-auth", token=token)).code == 401:
            return True
        await asyncio.sleep(0.01)
    return False


async def alice_logged_in(cli, token_request):
    await add_alice(cli)
    client = await add_client(cli, "--grant", "client_credentials,password,refresh_token")
    credentials = (client["client_id"], client["client_secret"])
    login = {"grant_type": "password", "username": "alice", "password": PASSWORD}
    tokens = body(await token_request(login, client=credentials))
    return credentials, login, tokens


async def test_users_delete_revokes_its_tokens_and_frees_the_name(
    cli, token_request, fetch, issuance
):
    credentials, login, tokens = await alice_logged_in(cli, token_request)
    old_id = (await issuance.store.get_user_by_name("alice")).user_id

    code, out, err = await cli("users", "delete", "alice")

    assert code == 0, err
    assert out.strip() == "deleted alice; its refresh and access tokens are revoked"
    assert await refused_soon(fetch, tokens["access_token"])
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    assert body(await token_request(refresh, client=credentials))["error"] == "invalid_grant"
    assert body(await token_request(login, client=credentials))["error"] == "invalid_grant"
    assert (await cli("users", "list"))[1] == ""
    # A new alice is another user: a new id, untouched by the old one's revocation.
    again = await add_alice(cli)
    assert again["user_id"] != old_id
    assert (await cli("users", "delete", "alice"))[0] == 0
    assert (await cli("users", "delete", "alice"))[:1] == (1,)


async def test_users_passwd_replaces_the_password_and_ends_its_sessions(cli, token_request, fetch):
    credentials, login, tokens = await alice_logged_in(cli, token_request)
    new = "a brand new passphrase"

    code, out, err = await cli("users", "passwd", "alice", "--password-stdin", stdin=new + "\n")

    assert code == 0, err
    assert "changed the password of alice" in out
    assert await refused_soon(fetch, tokens["access_token"])
    assert body(await token_request(login, client=credentials))["error"] == "invalid_grant"
    # The new password works; a token signed within the change cutoff's leeway would be
    # refused, so the login is deferred rather than handed a dead token.
    assert deferred(await token_request({**login, "password": new}, client=credentials))


async def test_users_passwd_refuses_a_short_password(cli):
    await add_alice(cli)
    code, _, err = await cli("users", "passwd", "alice", "--password-stdin", stdin="short\n")
    assert code == 2
    assert "characters" in err


async def test_clients_disable_and_enable(cli, token_request, fetch):
    credentials, _login, tokens = await alice_logged_in(cli, token_request)
    own = body(await token_request({"grant_type": "client_credentials"}, client=credentials))

    code, out, err = await cli("clients", "disable", "webapp")  # by name

    assert code == 0, err
    assert out.strip() == (
        f"disabled webapp ({credentials[0]}); its refresh and access tokens are revoked"
    )
    for token in (own["access_token"], tokens["access_token"]):
        assert await refused_soon(fetch, token)
    refused = await token_request({"grant_type": "client_credentials"}, client=credentials)
    assert refused.code == 401
    assert body(refused)["error"] == "invalid_client"
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    assert (await token_request(refresh, client=credentials)).code == 401
    listed = (await cli("clients", "list"))[1].split("\t")
    assert listed[2] == "disabled"

    assert (await cli("clients", "enable", credentials[0]))[0] == 0  # by id
    enabled = await token_request({"grant_type": "client_credentials"}, client=credentials)
    assert deferred(enabled)
    # Its refresh tokens stay revoked: a login from before the disable is over.
    assert body(await token_request(refresh, client=credentials))["error"] == "invalid_grant"


async def test_clients_rotate_secret_prints_a_new_one_and_the_old_stops_working(cli, token_request):
    client = await add_client(cli)
    old = (client["client_id"], client["client_secret"])

    code, out, err = await cli("clients", "rotate-secret", client["client_id"])

    assert code == 0, err
    rotated = json.loads(out)
    assert rotated["client_id"] == client["client_id"]
    assert rotated["client_secret"] != client["client_secret"]
    refused = await token_request({"grant_type": "client_credentials"}, client=old)
    assert refused.code == 401
    assert body(refused)["error"] == "invalid_client"
    new = (rotated["client_id"], rotated["client_secret"])
    assert (await token_request({"grant_type": "client_credentials"}, client=new)).code == 200


async def test_clients_delete_revokes_its_tokens(cli, token_request, fetch):
    credentials, _login, tokens = await alice_logged_in(cli, token_request)

    code, out, err = await cli("clients", "delete", credentials[0])

    assert code == 0, err
    assert "deleted webapp" in out
    assert await refused_soon(fetch, tokens["access_token"])
    refused = await token_request({"grant_type": "client_credentials"}, client=credentials)
    assert refused.code == 401
    assert (await cli("clients", "list"))[1] == ""


@pytest.mark.parametrize(
    "argv",
    [
        ["clients", "disable", "nobody"],
        ["clients", "enable", "nobody"],
        ["clients", "delete", "nobody"],
        ["clients", "rotate-secret", "nobody"],
        ["users", "enable", "nobody"],
        ["users", "delete", "nobody"],
    ],
)
async def test_lifecycle_commands_on_unknown_accounts_exit_1(cli, argv):
    code, out, err = await cli(*argv)
    assert code == 1
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert "nobody" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["users", "delete", "alice"],
        ["users", "passwd", "alice", "--password-stdin"],
        ["clients", "disable", "webapp"],
        ["clients", "delete", "webapp"],
    ],
)
async def test_revoking_lifecycle_commands_refuse_a_process_local_revocation_store(
    cli, monkeypatch, issuance, argv
):
    await add_alice(cli)
    await add_client(cli)
    monkeypatch.setenv("JOTGUARD_REVOCATION_STORE", "memory://")
    code, _, err = await cli(*argv, stdin="another passphrase\n")
    assert code == 2
    assert "memory://" in err
    assert not (await issuance.store.get_user_by_name("alice")).disabled
    assert not (await issuance.store.get_client_by_name("webapp")).disabled
