"""The OAuth 2.0 grants (RFC 6749): client credentials, password, rotating refresh tokens.

Every refresh rotates: the presented (opaque) token is marked used and a new one is
returned. Presenting a used token again means two parties hold it (theft, or a client
that lost a response): the whole family is revoked, refresh tokens and the access
tokens they produced alike (OAuth 2.1 §4.3.1, RFC 9700 §4.14.2) --
unless the operator opted into a reuse interval: within it, the same client
presenting a just-used token (two threads sharing one session) gets working tokens;
or unless the store recognises the retry of a rotation whose answer it lost.

A grant re-reads its client and user after it signed: one that was in flight while
either was disabled or deleted is refused, never returning a token that outlives it.

DPoP (RFC 9449 §5): a grant given the thumbprint (``jkt``) of a verified proof's key
binds its access token to that key (``cnf.jkt``); a password login given one binds its
refresh tokens too, and a refresh of a bound login must prove the same key. A login's
binding is fixed when it starts: refreshing an unbound one with a proof binds the new
access token only, as oidc-provider does.
"""

from __future__ import annotations

import hmac
import logging
import time
import uuid
from collections.abc import Awaitable, Callable

from backends.auth.local import IssuedToken, LocalIssuer
from backends.errors import BackendUnavailable
from backends.issuance.base import (
    ROTATION_REPLAY_WINDOW,
    AccessRecord,
    Client,
    Family,
    IssuanceStore,
    RefreshToken,
    Rotation,
    User,
)
from backends.issuance.client_secrets import ClientSecrets
from backends.issuance.cutoffs import refuse_if_covered
from backends.issuance.errors import (
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
)
from backends.issuance.login_revocation import LoginRevocation
from backends.issuance.passwords import PasswordHasher
from backends.issuance.tokens import (
    TokenGrant,
    hash_refresh_token,
    narrow_scopes,
    new_refresh_token,
)
from backends.principal import Principal
from backends.revocation.base import RevocationStore

log = logging.getLogger("jotguard.issuance")

Admit = Callable[[str], Awaitable[None]]
"""Called with a verified grant's subject before signing; raises to refuse (a budget)."""


class InvalidUserCredentials(InvalidGrant):
    """Unknown user, wrong password or disabled user: one answer for all three."""

    def __init__(self) -> None:
        super().__init__("Invalid username or password")


class KeyNotProven(InvalidGrant):
    """A refresh of a DPoP-bound login without a proof by its key: ``invalid_grant``, as
    oidc-provider answers it (the proof may be valid; the grant is not usable with it)."""

    def __init__(self) -> None:
        super().__init__("The refresh token is bound to a DPoP key this request did not prove")


class TokenService(LoginRevocation):
    """Authenticates clients and users and issues tokens; knows nothing of HTTP."""

    def __init__(
        self,
        store: IssuanceStore,
        hasher: PasswordHasher,
        issuer: LocalIssuer,
        revocations: RevocationStore,
        *,
        client_secrets: ClientSecrets,
        refresh_ttl: int,
        reuse_interval: float = 0.0,
        leeway: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.hasher = hasher
        self.client_secrets = client_secrets
        self.issuer = issuer
        self.revocations = revocations
        self.refresh_ttl = refresh_ttl
        self.reuse_interval = reuse_interval
        self.leeway = leeway
        self.clock = clock

    # -- authentication ---------------------------------------------------------------

    async def authenticate_client(self, client_id: str, secret: str) -> Client:
        """:raises InvalidClient: unknown client or wrong secret (same time either way)."""
        client = await self.store.get_client(client_id)
        check = await self.client_secrets.verify(client.secret_hash if client else None, secret)
        if client is None or not check.matched or client.disabled:
            raise InvalidClient()
        if check.upgraded is not None:
            await self._upgrade_client_secret(client, check.upgraded)
        return client

    async def _upgrade_client_secret(self, client: Client, upgraded: str) -> None:
        # An argon2id hash from an older version matched: store the keyed hash, so the
        # next check takes microseconds. Only if the secret has not changed meanwhile.
        try:
            await self.store.upgrade_client_secret_hash(
                client.client_id, client.secret_hash, upgraded
            )
        except Exception:
            log.exception("could not upgrade the secret hash of client %s", client.client_id)

    async def _authenticate_user(self, username: str, password: str) -> User:
        user = await self.store.get_user_by_name(username)
        matched = await self.hasher.verify(user.password_hash if user else None, password)
        if user is None or not matched or user.disabled:
            raise InvalidUserCredentials()
        if self.hasher.needs_rehash(user.password_hash):
            await self._rehash(user, password)
        return user

    async def _rehash(self, user: User, password: str) -> None:
        # The argon2 parameters changed since this hash was made: redo it while we can.
        try:
            await self.store.set_password_hash(user.user_id, await self.hasher.hash(password))
        except Exception:
            log.exception("could not upgrade the password hash of user %s", user.user_id)

    async def _confirm(
        self, client: Client, user_id: str | None, family_id: str | None, access: IssuedToken
    ) -> None:
        """Refuse a grant whose client or user was disabled or deleted while it ran, or
        whose access token a recent cutoff already covers (503: it would be refused).

        Called once everything is signed and stored. Disabling writes its flag first and
        takes its revocation cutoff after: a check here that still sees the flag clear ran
        before that cutoff, so what was signed earlier is covered by it (and a family
        stored earlier is among those it revokes). A check that sees it set refuses.
        """
        current = await self.store.get_client(client.client_id)
        client_gone = current is None or current.disabled
        user_gone = False
        if user_id is not None and not client_gone:
            user = await self.store.get_user(user_id)
            user_gone = user is None or user.disabled
        if not (client_gone or user_gone):
            try:
                await refuse_if_covered(self.revocations, access.claims, leeway=self.leeway)
            except BackendUnavailable:
                if family_id is not None:
                    await self.revoke_family(family_id, reason="issued within a cutoff's leeway")
                raise
            return
        log.info("a grant for client %s was refused: disabled while it ran", client.client_id)
        if family_id is not None:
            await self.revoke_family(family_id, reason="disabled during the grant")
        if client_gone:
            raise InvalidClient()
        raise InvalidUserCredentials()

    async def _revoked_by_operator(self, token: RefreshToken) -> bool:
        """Whether a subject or client revocation entry covers the refresh token: a
        "log out everywhere" (`jotguard revoke --sub`) must end its logins too."""
        principal = Principal(
            subject=token.subject,
            issuer=self.issuer.issuer,
            token_id=None,
            expires_at=int(token.expires_at),
            issued_at=int(token.issued_at),
            client_id=token.client_id,
        )
        return await self.revocations.is_revoked(principal) is not None

    def _may_reuse(self, token: RefreshToken, now: float) -> bool:
        used = token.used_at
        return self.reuse_interval > 0 and used is not None and now - used <= self.reuse_interval

    @staticmethod
    def _may_be_retry(token: RefreshToken, now: float) -> bool:
        used = token.used_at
        return used is not None and now - used <= ROTATION_REPLAY_WINDOW

    @staticmethod
    def _require_grant(client: Client, grant_type: str) -> None:
        if grant_type not in client.grant_types:
            raise UnauthorizedClient(f"This client may not use the {grant_type} grant")

    async def _sign(
        self, subject: str, client: Client, scopes: frozenset[str], jkt: str | None
    ) -> IssuedToken:
        claims = self.issuer.claims_for(subject, scopes=scopes, client_id=client.client_id, jkt=jkt)
        return await self.issuer.sign_async(claims)

    def _new_refresh_token(
        self,
        family_id: str,
        client: Client,
        subject: str,
        scopes: frozenset[str],
        now: float,
        jkt: str | None,
    ) -> tuple[str, RefreshToken]:
        return new_refresh_token(
            family_id, client.client_id, subject, scopes, now=now, ttl=self.refresh_ttl, jkt=jkt
        )

    @staticmethod
    def _require_key(token: RefreshToken, jkt: str | None) -> None:
        """:raises KeyNotProven: ``token`` is bound, and not to the key ``jkt`` names."""
        if token.jkt is not None and (
            jkt is None or not hmac.compare_digest(token.jkt.encode(), jkt.encode())
        ):
            raise KeyNotProven()

    # -- grants -----------------------------------------------------------------------

    async def client_credentials(
        self,
        client: Client,
        requested: frozenset[str] | None,
        *,
        admit: Admit | None = None,
        jkt: str | None = None,
    ) -> TokenGrant:
        """RFC 6749 §4.4: a token for the client itself; no refresh token (§4.4.3).

        ``jkt``, here and in the other grants: the thumbprint of the key of the request's
        verified DPoP proof, which the tokens are bound to.
        """
        self._require_grant(client, "client_credentials")
        scopes = narrow_scopes(requested, client.scopes)
        if admit is not None:
            await admit(client.client_id)
        access = await self._sign(client.client_id, client, scopes, jkt)
        await self._confirm(client, None, None, access)
        return TokenGrant(access, scopes)

    async def password(
        self,
        client: Client,
        username: str,
        password: str,
        requested: frozenset[str] | None,
        *,
        admit: Admit | None = None,
        jkt: str | None = None,
    ) -> TokenGrant:
        """RFC 6749 §4.3; starts a refresh-token family if the client may refresh."""
        self._require_grant(client, "password")
        user = await self._authenticate_user(username, password)
        scopes = narrow_scopes(requested, user.scopes & client.scopes)
        if admit is not None:
            await admit(user.user_id)
        access = await self._sign(user.user_id, client, scopes, jkt)
        if "refresh_token" not in client.grant_types:
            await self._confirm(client, user.user_id, None, access)
            return TokenGrant(access, scopes)
        now = self.clock()
        family_id = uuid.uuid4().hex
        plain, record = self._new_refresh_token(family_id, client, user.user_id, scopes, now, jkt)
        family = Family(
            family_id=family_id,
            client_id=client.client_id,
            subject=user.user_id,
            created_at=now,
            expires_at=max(record.expires_at, access.expires_at),
        )
        await self.store.start_family(family, record, AccessRecord(access.jti, access.expires_at))
        await self._confirm(client, user.user_id, family_id, access)
        return TokenGrant(access, scopes, plain)

    async def refresh(
        self,
        client: Client,
        presented: str,
        requested: frozenset[str] | None,
        *,
        admit: Admit | None = None,
        jkt: str | None = None,
    ) -> TokenGrant:
        """RFC 6749 §6 with rotation and reuse detection; a bound login needs its key."""
        self._require_grant(client, "refresh_token")
        now = self.clock()
        found = await self.store.get_refresh_token(hash_refresh_token(presented))
        # Another client's token is answered like an unknown one: it reveals nothing.
        if found is None or found[0].client_id != client.client_id:
            raise InvalidGrant("The refresh token is invalid")
        token, family = found
        # Before anything else: without the key, a copy of the token changes nothing (its
        # reuse revokes no family) and learns nothing of its state.
        self._require_key(token, jkt)
        if family.revoked_at is not None:
            await self._revoke_access_tokens(family, reason="refresh token family revoked")
            raise InvalidGrant("The refresh token has been revoked")
        if token.used_at is not None and not (
            self._may_reuse(token, now) or self._may_be_retry(token, now)
        ):
            await self._reuse_detected(family.family_id, client)
        if token.expires_at <= now:
            raise InvalidGrant("The refresh token has expired")
        user = await self.store.get_user(token.subject)
        if user is None or user.disabled:
            await self.revoke_family(family.family_id, reason="user disabled")
            raise InvalidGrant("The refresh token has been revoked")
        if await self._revoked_by_operator(token):
            await self.revoke_family(family.family_id, reason="subject or client revoked")
            raise InvalidGrant("The refresh token has been revoked")
        scopes = narrow_scopes(requested, token.scopes & user.scopes & client.scopes)
        if admit is not None:
            await admit(token.subject)
        access = await self._sign(token.subject, client, scopes, jkt)
        # The new refresh token keeps the original grant's scope (RFC 6749 §6) and binding.
        plain, record = self._new_refresh_token(
            family.family_id, client, token.subject, token.scopes, now, token.jkt
        )
        issued = AccessRecord(access.jti, access.expires_at)
        # A used token too: the store may recognise the retry of a rotation whose
        # answer was lost (IssuanceStore.rotate), else it answers ALREADY_USED.
        outcome = await self.store.rotate(token.token_hash, record, issued, now=now)
        if outcome is Rotation.ALREADY_USED:
            # Used before (or by a concurrent request just now): within the reuse interval
            # the family grows a branch; after it, this is a second holder.
            again = await self.store.get_refresh_token(token.token_hash)
            if again is None or not self._may_reuse(again[0], now):
                await self._reuse_detected(family.family_id, client)
            # A fresh successor: a failed rotation may have stored the other one.
            plain, record = self._new_refresh_token(
                family.family_id, client, token.subject, token.scopes, now, token.jkt
            )
            outcome = await self.store.add_to_family(family.family_id, record, issued, now=now)
            log.info("refresh token reused within the interval in family %s", family.family_id)
        if outcome is not Rotation.ROTATED:
            raise InvalidGrant("The refresh token has been revoked")
        await self._confirm(client, token.subject, family.family_id, access)
        return TokenGrant(access, scopes, plain)

    async def refresh_token_status(self, presented: str) -> tuple[RefreshToken, bool] | None:
        """The refresh token ``presented`` names, and whether it would refresh now
        (unused, unexpired, its family, user and client in good standing, no revocation
        entry covering it); None when it is not one of ours.

        :raises BackendUnavailable: a store needed to tell cannot answer.
        """
        found = await self.store.get_refresh_token(hash_refresh_token(presented))
        if found is None:
            return None
        token, family = found
        if family.revoked_at is not None or token.used_at is not None:
            return token, False
        if token.expires_at <= self.clock():
            return token, False
        user = await self.store.get_user(token.subject)
        client = await self.store.get_client(token.client_id)
        if user is None or user.disabled or client is None or client.disabled:
            return token, False
        return token, not await self._revoked_by_operator(token)

    # -- revocation -------------------------------------------------------------------

    async def _reuse_detected(self, family_id: str, client: Client) -> None:
        log.warning(
            "refresh token reuse: revoking family %s of client %s", family_id, client.client_id
        )
        await self.revoke_family(family_id, reason="refresh token reuse")
        raise InvalidGrant("The refresh token was already used; its whole family is revoked")

    # revoke_family, revoke_refresh_token, revoke_user, revoke_client: LoginRevocation.
