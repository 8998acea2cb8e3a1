"""Revocation stores: the denylist checked alongside expiry on every protected request."""

from backends.revocation.base import Revocation, RevocationStore

__all__ = ["Revocation", "RevocationStore"]
