"""``jotguard token issue --dpop-jwk FILE``: a CLI token bound to a public JWK, and every
file refused with one line and exit 2."""

from __future__ import annotations

import json

import pytest

from backends.auth.compact import parse_compact
from backends.dpop import generate_key, jwk_thumbprint, public_jwk
from tests.dpop_support import key_for


@pytest.fixture
def jwk_file(tmp_path):
    def write(content: object) -> str:
        path = tmp_path / "key.jwk"
        path.write_text(content if isinstance(content, str) else json.dumps(content))
        return str(path)

    return write


async def test_the_token_is_bound_to_the_public_key(cli, jwk_file, services):
    key = key_for("ES256")
    code, out, err = await cli(
        "token", "issue", "--sub", "alice", "--dpop-jwk", jwk_file(public_jwk(key))
    )

    assert code == 0, err
    (token,) = out.splitlines()
    assert parse_compact(token).claims["cnf"] == {"jkt": jwk_thumbprint(key)}
    assert "token_type DPoP" in err
    assert jwk_thumbprint(key) in err
    # A token of this issuer, as the server verifies it.
    principal = await services.authenticator.verify(token)
    assert principal.claims["cnf"] == {"jkt": jwk_thumbprint(key)}


async def test_without_the_flag_the_token_is_unbound(cli):
    code, out, err = await cli("token", "issue", "--sub", "alice")
    assert code == 0, err
    assert "cnf" not in parse_compact(out.strip()).claims
    assert "DPoP" not in err


@pytest.mark.parametrize("settings_overrides", [{"JOTGUARD_DPOP_ALGS": "ES384"}])
async def test_a_key_of_a_configured_algorithm_is_accepted(cli, jwk_file):
    key = generate_key("ES384")
    code, out, err = await cli(
        "token", "issue", "--sub", "a", "--dpop-jwk", jwk_file(public_jwk(key))
    )
    assert code == 0, err
    assert parse_compact(out.strip()).claims["cnf"] == {"jkt": jwk_thumbprint(key)}


REFUSED = {
    "private members": (lambda: key_for("ES256").as_dict(private=True), "private key material"),
    "a symmetric key": (lambda: {"kty": "oct", "k": "c2VjcmV0"}, "private key material"),
    "a curve no algorithm uses": (lambda: public_jwk(generate_key("ES384")), "fits none"),
    "another declared algorithm": (
        lambda: {**public_jwk(key_for("ES256")), "alg": "RS256"},
        "fits none",
    ),
    "a curve that is not a string": (
        lambda: {**public_jwk(key_for("ES256")), "crv": ["P-256"]},
        "fits none",
    ),
    "a JWK set": (lambda: {"keys": [public_jwk(key_for("ES256"))]}, "fits none"),
    "a point of the wrong length": (
        lambda: {**public_jwk(key_for("ES256")), "x": "AAAA"},
        "wrong length",
    ),
    "not JSON": (lambda: "-----BEGIN PUBLIC KEY-----", "not a JSON JWK"),
    "too large": (lambda: " " * 20000, "larger than"),
}


@pytest.mark.parametrize("case", REFUSED)
async def test_an_unusable_file_is_refused_with_one_line(case, cli, jwk_file):
    content, needle = REFUSED[case]
    code, out, err = await cli("token", "issue", "--sub", "a", "--dpop-jwk", jwk_file(content()))
    assert code == 2
    assert out == ""
    assert needle in err
    assert err.startswith("jotguard: --dpop-jwk ")
    assert len(err.strip().splitlines()) == 1


async def test_a_missing_file_is_refused(cli, tmp_path):
    code, out, err = await cli("token", "issue", "--sub", "a", "--dpop-jwk", str(tmp_path / "no"))
    assert (code, out) == (2, "")
    assert "cannot read it" in err


@pytest.mark.parametrize("settings_overrides", [{"JOTGUARD_DPOP": "off"}])
async def test_dpop_off_refuses_to_bind(cli, jwk_file):
    code, out, err = await cli(
        "token", "issue", "--sub", "a", "--dpop-jwk", jwk_file(public_jwk(key_for("ES256")))
    )
    assert (code, out) == (2, "")
    assert "JOTGUARD_DPOP is off" in err
