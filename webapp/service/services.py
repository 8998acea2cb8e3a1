"""The service's wiring: ``Services``, everything a running jotguard holds, built from
settings inside the loop and closed on exit.

Each part has a small builder reading only the settings it needs, and a part the
settings do not ask for is not built (no outbound HTTP client without a remote issuer
or token exchange, no mirror in front of the in-process memory store).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tornado.httpclient import AsyncHTTPClient

from backends.auth import AuthBackend, Authenticator
from backends.auth.local import LocalIssuer, LocalKeyBackend
from backends.auth.remote import RemoteIssuerBackend
from backends.auth.token_cache import VerifiedTokenCache
from backends.dpop import DPoPPolicy, DPoPVerifier, MemoryReplayCache, ReplayCache, StatelessNonces
from backends.dpop.replay_sqlite import FILE_NAME as REPLAY_FILE
from backends.dpop.replay_sqlite import SQLiteReplayCache
from backends.keys.keyring import Keyring
from backends.outbound.token_exchange import ClientCredentialsExchange
from backends.ratelimit import Policy, StrategyName, open_rate_limit
from backends.revocation.base import RevocationStore
from backends.revocation.factory import open_store
from backends.revocation.mirror import RevocationMirror
from backends.revocation.notify import notifier_for
from backends.tasks import cancel_all
from webapp.config.parsers import RATELIMIT_OFF
from webapp.config.settings import Settings
from webapp.service.issuance import Issuance
from webapp.service.metrics import Metrics
from webapp.service.readiness import Readiness
from webapp.web.clientip import ClientAddresses
from webapp.web.cors import CorsPolicy
from webapp.web.dpop import DPoPGate
from webapp.web.ratelimit import RequestLimits

log = logging.getLogger("jotguard")

KEYRING_POLL_SECONDS = 2.0


def local_keyring(settings: Settings) -> Keyring:
    return Keyring(settings.keyring_path, settings.signing_alg, retention=settings.key_retention)


async def loaded_keyring(settings: Settings) -> Keyring:
    """The local issuer's keyring, read off the loop. Made by `jotguard init` or `serve`
    (webapp.service.datadir), never as a side effect here."""
    keyring = local_keyring(settings)
    await asyncio.to_thread(keyring.load)
    return keyring


def outbound_client(settings: Settings) -> AsyncHTTPClient | None:
    """One client for every call to a remote issuer, closed with the services; None when
    no remote issuer or token exchange is configured."""
    if not settings.remote_issuer_configs and settings.auth0_client_credentials is None:
        return None
    return AsyncHTTPClient(force_instance=True)


def remote_backends(settings: Settings, http: AsyncHTTPClient) -> list[RemoteIssuerBackend]:
    """One backend per remote issuer (Auth0 and JOTGUARD_REMOTE_ISSUERS), not yet started."""
    return [
        RemoteIssuerBackend(
            config, policy=settings.jwks_policy, http_client=http, leeway=settings.leeway
        )
        for config in settings.remote_issuer_configs
    ]


def token_exchange(
    settings: Settings, http: AsyncHTTPClient | None
) -> ClientCredentialsExchange | None:
    credentials = settings.auth0_client_credentials
    if credentials is None or http is None:
        return None
    return ClientCredentialsExchange(
        credentials, http_client=http, timeout=settings.auth0_token_timeout
    )


def local_issuer(settings: Settings, keyring: Keyring) -> LocalIssuer:
    return LocalIssuer(
        keyring,
        issuer=settings.issuer_url,
        audience=settings.audience,
        ttl=settings.access_token_ttl,
    )


def revocation_store(settings: Settings) -> RevocationStore:
    """The configured store; it connects lazily, so a store that is down does not stop start-up."""
    return open_store(
        settings.revocation_store_url, leeway=settings.leeway, max_token_ttl=settings.max_token_ttl
    )


def token_cache(settings: Settings) -> VerifiedTokenCache | None:
    size = settings.token_cache_size
    return VerifiedTokenCache(size) if size > 0 else None


def authenticator(
    settings: Settings,
    keyring: Keyring,
    remote: list[RemoteIssuerBackend],
    revocations: RevocationStore,
) -> Authenticator:
    """Tokens of the local issuer, then of each remote one, checked against ``revocations``."""
    local = LocalKeyBackend(
        keyring, issuer=settings.issuer_url, audience=settings.audience, leeway=settings.leeway
    )
    backends: list[AuthBackend] = [local, *remote]
    return Authenticator(
        backends,
        revocations=revocations,
        fail_open=settings.revocation_fail_open,
        max_token_lifetime=settings.max_token_ttl + settings.leeway,
        token_cache=token_cache(settings),
    )


def dpop_replay_url(settings: Settings) -> str | None:
    """The Redis that remembers spent proofs for every instance: the rate-limit storage's,
    else the revocation store's; None when neither is Redis."""
    for url in (settings.ratelimit_storage, settings.revocation_store_url):
        if url.startswith(("redis://", "rediss://")):
            return url
    return None


def dpop_replay_cache(settings: Settings, policy: DPoPPolicy) -> ReplayCache:
    """Where spent proofs are remembered: in Redis when the service uses one (shared by
    every instance and worker); else, with ``--workers``, in an SQLite file in the data
    directory that every worker shares (opened on the first proof: only a server spends
    proofs, so no other command creates it); else in this process's memory: a tenth or less
    of the file's cost (``bench/dpop_replay.py``), and enough where one process serves
    (separate instances without Redis each remember their own: see the README)."""
    url = dpop_replay_url(settings)
    if url is not None:
        # Here, not at the top: without Redis configured, no Redis driver is imported.
        from backends.dpop.replay_redis import RedisReplayCache

        return RedisReplayCache.from_url(url, prefix=settings.dpop_key_prefix)
    if settings.workers > 1:
        return SQLiteReplayCache(settings.data_dir / REPLAY_FILE)
    return MemoryReplayCache(policy.replay_window)


def dpop_nonce_secret(settings: Settings, keyring: Keyring) -> bytes:
    """JOTGUARD_DPOP_NONCE_SECRET, else one derived from the keyring's oldest key: every
    instance and worker reading the same keyring issues and accepts the same nonces."""
    if settings.dpop_nonce_secret:
        return settings.dpop_nonce_secret.encode()
    oldest = min(keyring.all_keys(), key=lambda k: (k.created_at, k.kid))
    material = json.dumps(oldest.key.as_dict(private=True), sort_keys=True).encode()
    return hmac.new(material, b"jotguard dpop nonce secret v1", "sha256").digest()


def dpop_gate(settings: Settings, keyring: Keyring) -> DPoPGate | None:
    """What handlers check DPoP proofs with; None when JOTGUARD_DPOP is off."""
    if settings.dpop == "off":
        return None
    policy = DPoPPolicy(
        algorithms=settings.dpop_algs,
        proof_lifetime=settings.dpop_proof_lifetime,
        leeway=settings.leeway,
    )
    nonces = StatelessNonces(dpop_nonce_secret(settings, keyring)) if settings.dpop_nonce else None
    verifier = DPoPVerifier(policy, replay=dpop_replay_cache(settings, policy), nonces=nonces)
    proxies = (
        ClientAddresses(
            settings.trusted_proxies, settings.ratelimit_ipv6_prefix, settings.client_ip_header
        )
        if settings.trusted_proxies
        else None
    )
    return DPoPGate(
        verifier,
        mode="required" if settings.dpop == "required" else "allowed",
        public_url=settings.public_url or None,
        issuer_modes={c.issuer: c.dpop for c in settings.remote_issuers if c.dpop is not None},
        proxies=proxies,
    )


def configured(
    name: str, limits: str, strategy: StrategyName = "sliding-window-counter"
) -> Policy | None:
    """The policy a setting describes; None when it is ``off``."""
    return None if limits == RATELIMIT_OFF else Policy(name, limits, strategy)


def request_limits(settings: Settings, *, clock: Callable[[], float] = time.time) -> RequestLimits:
    """The configured policies, counted where the settings say; in-process windows on
    ``clock`` (tests pass one they move)."""
    limiter = open_rate_limit(
        settings.ratelimit_storage,
        key_prefix=settings.ratelimit_key_prefix,
        timeout=settings.ratelimit_timeout,
        fail_closed=settings.ratelimit_fail_closed,
        max_keys=settings.ratelimit_max_keys,
        clock=clock,
    )
    routes = {
        "default": configured("default", settings.ratelimit_default),
        "token": configured("token", settings.ratelimit_token, "moving-window"),
        "introspect": configured("introspect", settings.ratelimit_introspect),
        "admin": configured("admin", settings.ratelimit_admin),
        "api": configured("api", settings.ratelimit_api),
    }
    return RequestLimits(
        limiter,
        [policy for policy in routes.values() if policy is not None],
        off=[name for name, policy in routes.items() if policy is None],
        failed_auth=configured("failed-auth", settings.ratelimit_failed_auth, "moving-window"),
        preauth=configured("preauth", settings.ratelimit_preauth),
        password=configured("password", settings.ratelimit_password, "moving-window"),
        password_ip=configured("password-ip", settings.ratelimit_password_ip, "moving-window"),
        trusted_proxies=settings.trusted_proxies,
        ipv6_prefix=settings.ratelimit_ipv6_prefix,
        client_ip_header=settings.client_ip_header,
    )


async def followed(settings: Settings, store: RevocationStore) -> RevocationStore:
    """``store`` behind an in-memory mirror of its change feed, loaded and followed
    (polled, and woken at once by the store's announcements where it makes them).

    The memory store is in-process already: it is its own mirror.
    """
    if settings.revocation_store_url.startswith("memory:"):
        return store
    mirror = RevocationMirror(
        store,
        poll_interval=settings.revocation_poll_interval,
        freshness=settings.revocation_freshness,
        notifier=notifier_for(store),
    )
    await mirror.start()
    return mirror


@dataclass
class Services:
    settings: Settings
    keyring: Keyring
    issuer: LocalIssuer
    authenticator: Authenticator
    revocations: RevocationStore
    rate_limits: RequestLimits
    issuance: Issuance
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    # Remote issuers (Auth0 ...): their key sets' status feeds /readyz and /metrics.
    remote_backends: list[RemoteIssuerBackend] = field(default_factory=list)
    token_exchange: ClientCredentialsExchange | None = None
    outbound_http: AsyncHTTPClient | None = None
    # -- operability: a feature plugs in with services.readiness.add("name", store.ping)
    # and services.metrics.watch(store) (a backends.telemetry.TelemetrySource).
    metrics: Metrics = field(default_factory=Metrics)
    readiness: Readiness = field(default_factory=lambda: Readiness(timeout=0.8))
    cors: CorsPolicy | None = None
    dpop: DPoPGate | None = None

    @classmethod
    async def start(
        cls,
        settings: Settings,
        *,
        mirror: bool = True,
        rate_limit_clock: Callable[[], float] = time.time,
    ) -> Services:
        """``mirror=False``: check and write the store directly (one-shot commands such as
        ``jotguard revoke``, which need not load the whole revocation list).
        ``rate_limit_clock``: the wall clock rate-limit windows count on."""
        keyring = await loaded_keyring(settings)
        outbound_http = outbound_client(settings)
        remote = remote_backends(settings, outbound_http) if outbound_http is not None else []
        revocations = revocation_store(settings)
        if mirror:
            revocations = await followed(settings, revocations)
        issuer = local_issuer(settings, keyring)
        issuance = Issuance.open(settings, issuer, revocations)
        if mirror:  # a server; one-shot commands check no client secrets and make no key
            await issuance.load_keys()
        services = cls(
            settings=settings,
            keyring=keyring,
            issuer=issuer,
            remote_backends=remote,
            token_exchange=token_exchange(settings, outbound_http),
            outbound_http=outbound_http,
            readiness=Readiness(settings.ready_timeout),
            cors=CorsPolicy.from_origins(settings.cors_origins),
            authenticator=authenticator(settings, keyring, remote, revocations),
            revocations=revocations,
            rate_limits=request_limits(settings, clock=rate_limit_clock),
            issuance=issuance,
            dpop=dpop_gate(settings, keyring),
        )
        services._run()
        return services

    def _run(self) -> None:
        """Start the background work, and register what /readyz and /metrics report."""
        self._tasks.append(asyncio.create_task(self._follow_keyring()))
        self.issuance.start_background()
        self.metrics.watch(self.keyring)
        revocations = self.revocations
        self.readiness.add("revocation_store", revocations.ping)
        if isinstance(revocations, RevocationMirror):
            self.metrics.watch(revocations)
            self.readiness.note("revocation_store", revocations.loss_note)
        limiter = self.rate_limits.limiter
        self.metrics.watch(limiter)
        if not self.settings.ratelimit_storage.startswith("memory://"):
            self.readiness.add("ratelimit_storage", limiter.ping)
        for backend in self.remote_backends:
            backend.start()
            self.metrics.watch(backend)
            self.readiness.add(f"jwks:{backend.issuer}", backend.ready)

    async def _follow_keyring(self) -> None:
        # Picks up `jotguard keys rotate` run beside the server: signing moves to the new key.
        known = self._verification_key_ids()
        while True:
            await asyncio.sleep(KEYRING_POLL_SECONDS)
            try:
                if await self.keyring.reload_if_changed():
                    log.info("keyring reloaded; current key %s", self.keyring.current.kid)
            except Exception:
                log.exception("keyring reload failed; keeping the keys already loaded")
            # A key gone from the keyring (however it was reloaded) or from a remote
            # issuer's JWKS takes the tokens it verified out of the cache with it.
            kids = self._verification_key_ids()
            if known - kids:
                self.authenticator.forget_verified()
            known = kids

    def _verification_key_ids(self) -> set[tuple[str, str]]:
        """(issuer, kid) of every key a cached token may have been verified with."""
        kids = {(self.settings.issuer_url, k.kid) for k in self.keyring.all_keys()}
        for backend in self.remote_backends:
            kids.update((backend.issuer, kid) for kid in backend.status().key_ids)
        return kids

    async def close(self) -> None:
        await cancel_all(self._tasks)
        self._tasks.clear()
        for backend in self.remote_backends:
            await backend.aclose()
        if self.outbound_http is not None:
            self.outbound_http.close()
        await self.revocations.close()
        await self.rate_limits.limiter.aclose()
        await self.issuance.close()
        if self.dpop is not None:
            await self.dpop.verifier.replay.aclose()
