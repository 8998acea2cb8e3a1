async def test_unprotected_route(fetch):
    response = await fetch("/test")
    assert response.code == 200
    assert response.body == b"This is an unprotected route."


async def test_protected_route_with_token(fetch, issue_token):
    response = await fetch("/test-auth", token=issue_token("alice"))
    assert response.code == 200
    assert response.body == b"This is a protected route."


async def test_api_answers_carry_no_etag_but_the_key_set_does(fetch):
    # no-store answers are never revalidated; the JWKS is cached and may be.
    assert "ETag" not in (await fetch("/test")).headers
    jwks = await fetch("/.well-known/jwks.json")
    etag = jwks.headers["ETag"]
    again = await fetch("/.well-known/jwks.json", headers={"If-None-Match": etag})
    assert again.code == 304


async def test_fresh_request_ids_are_128_random_bits(fetch):
    first, second = [(await fetch("/test")).headers["X-Request-ID"] for _ in range(2)]
    assert first != second
    assert all(len(rid) == 32 and int(rid, 16) >= 0 for rid in (first, second))
