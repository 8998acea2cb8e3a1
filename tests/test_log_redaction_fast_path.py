"""``redact`` skips its regex for lines that cannot match: it must mask exactly as before."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from webapp.service.logs import _CREDENTIALS, REDACTED, _mask, redact

TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLWJ5dGVz"


def full_pattern(text: str) -> str:
    return _CREDENTIALS.sub(_mask, text)


@pytest.mark.parametrize(
    "line",
    [
        "GET /test-auth 200 0.4ms request_id=4f1c0a0e5d2b client=127.0.0.1 auth=ok sub=alice",
        f"Authorization: Bearer {TOKEN}",
        f"authorization: BEARER {TOKEN}",
        "Basic dXNlcjpwYXNzd29yZA==",
        "DPoP abcdefghijklmnop",
        f"malformed {TOKEN.upper()} seen",
        "redis://user:s3cret@host:6379/0",
        "POST /oauth/token body grant_type=password&password=hunter2&client_secret=x1",
        "GET /cb?access_token=abc&id_token=def&refresh_token=ghi",
        f"non-ASCII line \u00e9t\u00e9 Bearer {TOKEN}",
        "Kelvin \u212a and long s \u017f: bearer abcdefghijklmnopqr",
    ],
)
def test_known_lines_are_masked_as_by_the_full_pattern(line):
    assert redact(line) == full_pattern(line)


def test_a_line_with_a_token_is_still_masked():
    assert redact(f"header Bearer {TOKEN}") == f"header Bearer {REDACTED}"


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.sampled_from(
                [
                    "bearer ",
                    "Basic ",
                    "dpop ",
                    "eyJ",
                    "EYJ.",
                    "://",
                    ":",
                    "@",
                    "token=",
                    "Token=",
                    "password=",
                    "client_secret=",
                    ".",
                    " ",
                    "=",
                    "&",
                    "abcdefghijklmnop",
                ]
            ),
            st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=12),
        ),
        max_size=20,
    )
)
def test_any_line_is_masked_as_by_the_full_pattern(parts):
    line = "".join(parts)
    assert redact(line) == full_pattern(line)
