"""``htu`` normalisation (RFC 3986 §6.2.2-6.2.3): what must match, and what must not."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backends.dpop.htu import normalize_htu, normalize_request_uri


def matches(htu: str, request: str) -> bool:
    try:
        return normalize_htu(htu) == normalize_request_uri(request)
    except ValueError:
        return False


@pytest.mark.parametrize(
    ("htu", "request_uri"),
    [
        ("https://api.example/a", "https://api.example/a?x=1#f"),
        ("https://api.example/a?y=2", "https://api.example/a"),
        ("https://api.example/a#frag", "https://api.example/a"),
        ("HTTPS://API.EXAMPLE/a", "https://api.example/a"),
        ("https://api.example:443/a", "https://api.example/a"),
        ("http://api.example:80/a", "http://api.example/a"),
        ("https://api.example:/a", "https://api.example/a"),
        ("https://api.example:0443/a", "https://api.example/a"),
        ("https://api.example:8443/a", "https://api.example:8443/a"),
        ("https://api.example", "https://api.example/"),
        ("https://api.example/%7Euser", "https://api.example/~user"),
        ("https://api.example/~user", "https://api.example/%7euser"),
        ("https://api.example/a%2fb", "https://api.example/a%2Fb"),
        ("https://api.example/caf\u00e9", "https://api.example/caf%C3%A9"),
        ("https://api.example/a b", "https://api.example/a%20b"),
        ("https://api.example/a/./b/../c", "https://api.example/a/c"),
        ("https://api.example/a/b/..", "https://api.example/a/"),
        ("https://%61pi.example/a", "https://api.example/a"),
        ("https://b\u00fccher.example/a", "https://xn--bcher-kva.example/a"),
        ("https://B\u00dcCHER.example/a", "https://xn--bcher-kva.example/a"),
        ("https://b%C3%BCcher.example/a", "https://xn--bcher-kva.example/a"),
        ("https://[::1]:443/a", "https://[0:0:0:0:0:0:0:1]/a"),
        ("https://[2001:DB8::1]/a", "https://[2001:db8::1]/a"),
        ("http://127.0.0.1:8080/a", "http://127.0.0.1:8080/a"),
    ],
)
def test_equivalent_uris_match(htu, request_uri):
    assert matches(htu, request_uri)


@pytest.mark.parametrize(
    ("htu", "request_uri"),
    [
        ("https://api.example/a", "https://api.example/b"),
        ("https://api.example/a", "https://api.example/a/"),
        ("https://api.example/A", "https://api.example/a"),  # paths are case-sensitive
        ("https://api.example/a", "http://api.example/a"),
        ("https://api.example/a", "https://api.example:8443/a"),
        ("https://api.example:80/a", "https://api.example/a"),  # 80 is not https's default
        ("https://api.example/a", "https://api.example.evil/a"),
        ("https://api.example./a", "https://api.example/a"),
        ("https://api.example/a%2Fb", "https://api.example/a/b"),  # %2F is not "/"
        ("https://api.example/a", "https://api.example/b/../a"),  # the request as routed
        ("https://user:pw@api.example/a", "https://api.example/a"),
        ("ftp://api.example/a", "ftp://api.example/a"),
        ("//api.example/a", "https://api.example/a"),
        ("/a", "https://api.example/a"),
        ("https:///a", "https:///a"),
        ("https://api.example:99999/a", "https://api.example:99999/a"),
        ("https://api.example:1x/a", "https://api.example:1x/a"),
        ("https://api.example/%zz", "https://api.example/%zz"),
        ("https://api.exa_mple/a", "https://api.exa%mple/a"),
        ("https://[::1/a", "https://[::1/a"),
        ("https://[::1]x/a", "https://[::1]x/a"),
        ("https://api\\.example/a", "https://api\\.example/a"),
        # IDNA 2003 maps "ß" to "ss", IDNA 2008 keeps it: such a host names two hosts.
        ("https://fa\u00df.example/a", "https://fass.example/a"),
        ("https://fa\u00df.example/a", "https://xn--fa-hia.example/a"),
    ],
)
def test_different_or_unusable_uris_do_not_match(htu, request_uri):
    assert not matches(htu, request_uri)


hosts = st.from_regex(r"[a-z][a-z0-9-]{0,10}(\.[a-z][a-z0-9-]{0,10}){0,2}", fullmatch=True)
segments = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="/?#%"), max_size=8
).filter(lambda s: s not in {".", ".."})
paths = st.lists(segments, max_size=4).map(lambda parts: "/" + "/".join(parts))
schemes = st.sampled_from(["http", "https"])


def _flip_case(text: str, flips: list[bool]) -> str:
    return "".join(
        c.upper() if flip else c for c, flip in zip(text, flips + [False] * len(text), strict=False)
    )


@given(schemes, hosts, paths, st.lists(st.booleans(), max_size=30), st.booleans(), st.text())
def test_spelling_variants_of_one_uri_match(scheme, host, path, flips, default_port, query):
    request = f"{scheme}://{host}{path}"
    port = {"http": ":80", "https": ":443"}[scheme] if default_port else ""
    htu = f"{_flip_case(scheme, flips)}://{_flip_case(host, flips[5:])}{port}{path}"
    assert matches(htu + "?" + query.replace("#", ""), request)
    assert matches(normalize_htu(htu), request)
    assert normalize_htu(normalize_htu(htu)) == normalize_htu(htu)


@given(schemes, hosts, paths, paths)
def test_different_paths_never_match(scheme, host, first, second):
    if normalize_htu(f"{scheme}://{host}{first}") != normalize_htu(f"{scheme}://{host}{second}"):
        assert not matches(f"{scheme}://{host}{first}", f"{scheme}://{host}{second}")


@given(st.text(max_size=80))
def test_any_text_is_normalised_or_refused_with_value_error(text):
    for normalize in (normalize_htu, normalize_request_uri):
        with contextlib.suppress(ValueError):
            normalize(text)
