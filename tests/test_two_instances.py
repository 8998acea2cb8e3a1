"""Two jotguard instances: one issues tokens, the other accepts them as its Auth0 issuer."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from tornado.httpclient import AsyncHTTPClient
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from webapp.cli import main as cli
from webapp.config.settings import Settings
from webapp.service.app import make_app
from webapp.service.services import Services


@asynccontextmanager
async def jotguard(data_dir: Path, **environ: str) -> AsyncIterator[tuple[Services, str]]:
    """A running jotguard on 127.0.0.1 whose own issuer URL is its real address."""
    sock, port = bind_unused_port()
    base = f"http://127.0.0.1:{port}"
    settings = Settings.load(
        environ={
            "JOTGUARD_DATA_DIR": str(data_dir),
            "JOTGUARD_ISSUER": base + "/",
            "JOTGUARD_ENV_FILE": str(data_dir / "absent.env"),
            **environ,
        }
    )
    services = await Services.start(settings)
    server = HTTPServer(make_app(services))
    server.add_sockets([sock])
    try:
        yield services, base
    finally:
        server.stop()
        await server.close_all_connections()
        await services.close()


def data_dir_from(template: Path, directory: Path) -> Path:
    directory.mkdir(mode=0o700)
    shutil.copy2(template, directory / "keyring.json")
    return directory


async def test_a_token_issued_by_one_jotguard_is_accepted_by_another_across_rotation(
    tmp_path: Path, keyring_template: Path
) -> None:
    issuer_dir = data_dir_from(keyring_template, tmp_path / "issuer")
    client = AsyncHTTPClient(force_instance=True)

    async def call(base: str, token: str) -> int:
        response = await client.fetch(
            base + "/test-auth", headers={"Authorization": f"Bearer {token}"}, raise_error=False
        )
        return response.code

    resource_dir = data_dir_from(keyring_template, tmp_path / "resource")
    # The resource server knows only the issuer's URL: it discovers the JWKS from it.
    async with (
        jotguard(issuer_dir) as (issuer, issuer_base),
        jotguard(
            resource_dir,
            AUTH0_ISSUER=issuer_base + "/",
            AUTH0_AUDIENCE=issuer.settings.audience,
        ) as (resource, resource_base),
    ):
        [remote] = resource.remote_backends

        def sign() -> str:
            claims = issuer.issuer.claims_for("alice", scopes=["read:catchphrases"])
            return issuer.issuer.sign(claims).token

        old_token = sign()
        assert await call(resource_base, old_token) == 200
        fetches = remote.status().fetches
        assert fetches == 1

        # Rotate the issuer's key with its CLI, as an operator would, beside the server.
        argv = ["keys", "rotate", "--now", "--data-dir", str(issuer_dir)]
        argv += ["--env-file", str(issuer_dir / "absent.env")]
        assert await asyncio.to_thread(cli.main, argv) == 0
        assert await issuer.keyring.reload_if_changed()  # what its 2 s poll would do

        new_token = sign()
        assert await call(resource_base, new_token) == 200
        assert await call(resource_base, new_token) == 200
        assert await call(resource_base, old_token) == 200  # retired, still published
        assert remote.status().fetches == fetches + 1
        assert len(remote.status().key_ids) == 2
    client.close()
