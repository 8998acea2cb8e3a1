async def test_unprotected_route(fetch):
    response = await fetch("/test")
    assert response.code == 200
    assert response.body == b"This is an unprotected route."


async def test_protected_route_with_token(fetch, issue_token):
    response = await fetch("/test-auth", token=issue_token("alice"))
    assert response.code == 200
    assert response.body == b"This is a protected route."
