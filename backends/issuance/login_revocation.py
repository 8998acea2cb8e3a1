"""Ending logins: a refresh-token family with the access tokens it handed out, and every
login of a user or of a client. The revocation half of ``TokenService``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from backends.auth.local import LocalIssuer
from backends.issuance.base import Client, Family, IssuanceStore, User
from backends.issuance.errors import UnauthorizedClient
from backends.issuance.tokens import hash_refresh_token
from backends.revocation.base import Revocation, RevocationStore

log = logging.getLogger("jotguard.issuance")


class LoginRevocation:
    """Mixed into ``TokenService``, which sets these attributes."""

    store: IssuanceStore
    issuer: LocalIssuer
    revocations: RevocationStore
    clock: Callable[[], float]

    async def revoke_family(self, family_id: str, *, reason: str) -> None:
        """Revoke a login: its refresh tokens at once, its live access tokens by jti."""
        family = await self.store.revoke_family(family_id, now=self.clock())
        if family is not None:
            await self._revoke_access_tokens(family, reason=reason)

    async def _revoke_access_tokens(self, family: Family, *, reason: str) -> None:
        # Retried on every later touch of the family until the revocation store took them all.
        if family.access_revoked:
            return
        live = family.live_access_tokens(self.clock())
        await asyncio.gather(
            *(
                self.revocations.revoke_token(
                    a.jti,
                    issuer=self.issuer.issuer,
                    expires_at=a.expires_at,
                    reason=reason,
                    actor=f"jotguard:refresh-family:{family.family_id}",
                )
                for a in live
            )
        )
        await self.store.mark_access_revoked(family.family_id)
        log.info(
            "refresh family %s revoked with %d live access tokens", family.family_id, len(live)
        )

    async def revoke_refresh_token(self, client: Client, presented: str) -> bool:
        """RFC 7009 for a refresh token: revokes its family. False if it is not one of ours.

        :raises UnauthorizedClient: it was issued to another client (RFC 7009 §2.1).
        """
        found = await self.store.get_refresh_token(hash_refresh_token(presented))
        if found is None:
            return False
        if found[0].client_id != client.client_id:
            raise UnauthorizedClient("The token was not issued to this client")
        await self.revoke_family(found[1].family_id, reason="revoked by its client")
        return True

    async def revoke_user(self, user: User, *, reason: str, actor: str) -> Revocation:
        """Every token of ``user``: refresh families now, access tokens by a subject cutoff
        at this issuer (user ids are random and never reused); the subject entry."""
        now = self.clock()
        families = await self.store.revoke_families_of(user.user_id, now=now)
        entry = await self.revocations.revoke_subject(
            user.user_id, before=now, issuer=self.issuer.issuer, reason=reason, actor=actor
        )
        return await self._covered(families, entry)

    async def revoke_client(self, client: Client, *, reason: str, actor: str) -> Revocation:
        """Every token of ``client``: its refresh families (every user's logins through it)
        now, its access tokens by a client cutoff at this issuer; the client entry."""
        now = self.clock()
        families = await self.store.revoke_families_of_client(client.client_id, now=now)
        entry = await self.revocations.revoke_client(
            client.client_id, before=now, issuer=self.issuer.issuer, reason=reason, actor=actor
        )
        return await self._covered(families, entry)

    async def _covered(self, families: list[Family], entry: Revocation) -> Revocation:
        """``entry``'s cutoff covers every access token of ``families``: mark them so."""
        for family in families:
            await self.store.mark_access_revoked(family.family_id)
        return entry
