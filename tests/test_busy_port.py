"""``jotguard serve`` on a port it cannot have: one line naming it, exit 1, no traceback."""

from __future__ import annotations

import socket

import pytest

from tests.cli import cli_env, initialised, jotguard_process

pytestmark = pytest.mark.slow


@pytest.fixture
def taken():
    """A port something else listens on (as Jupyter often has 8888)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_busy_port_is_one_line_and_exit_1(tmp_path, taken, workers):
    env = initialised(cli_env(tmp_path / "data", JOTGUARD_SIGNING_ALG="ES256"))
    done = jotguard_process(
        "serve", "--port", str(taken), "--workers", workers, env=env, timeout=60
    )
    assert done.returncode == 1
    assert done.stderr == f"jotguard: cannot listen on 127.0.0.1:{taken}: address already in use\n"


def test_a_busy_metrics_port_is_one_line_and_exit_1(tmp_path, taken):
    env = cli_env(tmp_path / "data", JOTGUARD_SIGNING_ALG="ES256")
    done = jotguard_process("serve", "--port", "0", "--metrics", str(taken), env=env, timeout=60)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert f"jotguard: cannot listen on 127.0.0.1:{taken}: address already in use" in (
        done.stderr.splitlines()
    )


def test_a_host_that_does_not_resolve_is_named(tmp_path):
    env = cli_env(tmp_path / "data", JOTGUARD_SIGNING_ALG="ES256")
    done = jotguard_process("serve", "--host", "no-such-host.invalid", "--port", "0", env=env)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "jotguard: cannot listen on no-such-host.invalid:0: " in done.stderr
