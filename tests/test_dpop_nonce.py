"""Stateless DPoP server nonces: every instance with the secret agrees, and only for a while."""

from __future__ import annotations

import pytest

from backends.dpop import StatelessNonces
from backends.errors import ConfigError

SECRET = b"k" * 32
NOW = 1_700_000_000.0


def test_a_nonce_is_accepted_by_every_instance_with_the_secret():
    first, second = StatelessNonces(SECRET), StatelessNonces(SECRET)
    nonce = first.issue(NOW)
    assert second.check(nonce, NOW)
    assert second.issue(NOW) == nonce


def test_another_secret_refuses_it():
    nonce = StatelessNonces(SECRET).issue(NOW)
    assert not StatelessNonces(b"o" * 32).check(nonce, NOW)


def test_a_nonce_lives_one_to_three_steps():
    nonces = StatelessNonces(SECRET, step=120)
    start = 120 * (NOW // 120)  # the first second of a step
    nonce = nonces.issue(start)
    assert nonces.check(nonce, start + 239)  # the next step: still good
    assert not nonces.check(nonce, start + 240)  # two steps on: gone
    assert nonces.check(nonce, start - 1)  # a peer whose clock is behind
    assert not nonces.check(nonce, start - 121)


def test_a_new_step_issues_a_new_nonce():
    nonces = StatelessNonces(SECRET, step=120)
    assert nonces.issue(NOW) != nonces.issue(NOW + 120)


@pytest.mark.parametrize("mangle", [lambda n: n[:-1], lambda n: n + "A", lambda n: "x" * len(n)])
def test_altered_nonces_are_refused(mangle):
    nonces = StatelessNonces(SECRET)
    assert not nonces.check(mangle(nonces.issue(NOW)), NOW)


def test_nonces_fit_the_dpop_nonce_syntax():
    # RFC 9449 §8.1: nonce = 1*NQCHAR
    nonce = StatelessNonces(SECRET).issue(NOW)
    assert all(c == "!" or "#" <= c <= "[" or "]" <= c <= "~" for c in nonce)


def test_short_secrets_and_bad_steps_are_refused():
    with pytest.raises(ConfigError):
        StatelessNonces(b"short")
    with pytest.raises(ConfigError):
        StatelessNonces(SECRET, step=0)
