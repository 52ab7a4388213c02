"""Capability tokens: created once (the secret is shown once), stored hashed, verified in constant time.

    store = TokenStore.load(vault)
    issued = store.create(agent="phone-agent", scopes=["memory:read"], location="coarse", ttl=parse_ttl("30d"))
    actor = store.verify(issued.secret)          # -> Actor, or raises TokenRefused
    store.revoke(issued.token.token_id)

A token reads `lv_<token_id>_<secret>`: the id is public (it names the token in the audit log and the
privacy report), the secret is 32 random bytes. Only SHA-256(secret) is stored; verification looks the id
up and compares hashes with hmac.compare_digest. The store keeps every token in memory (the server owns
the vault, so every change goes through it) and the rate limiter is a token bucket per token.

This module does not import FastAPI: the CLI uses it directly when no server is running.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import ClassVar, Literal

from embeddings.redaction import Redaction
from vault import audit
from vault import tokens as vault_tokens
from vault.audit import AuditEvent
from vault.errors import VaultError
from vault.store import Vault

SCOPES = ("memory:read", "memory:write", "location:read", "calendar:read", "usage:read", "audit:read", "owner")
Precision = Literal["none", "coarse", "precise"]
PRECISIONS = ("none", "coarse", "precise")
PREFIX = "lv_"
DEFAULT_RATE = 600  # requests per minute
OWNER_SESSION_ID = "serve-owner"
_TOKEN_RE = re.compile(r"^lv_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
_TTL_RE = re.compile(r"^(\d+)\s*([smhdw])$")
_TTL_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class TokenError(VaultError):
    """A token request that cannot be honoured (unknown scope, bad TTL, unknown token id)."""


class TokenRefused(Exception):
    """Authentication failed. `token_id` is set when the token was recognised (revoked or expired)."""

    def __init__(self, reason: str, token: Token | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.token = token


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenCreated(AuditEvent):
    kind: ClassVar[str] = "api.token.created"
    token_id: str
    agent: str
    scopes: list[str]
    location: str
    purpose: str | None
    expires_at: str | None
    rate_per_minute: int


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenRevoked(AuditEvent):
    kind: ClassVar[str] = "api.token.revoked"
    token_id: str
    agent: str
    scopes: list[str]
    purpose: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Token:
    token_id: str
    secret_sha256: str = field(repr=False)
    agent: str
    scopes: frozenset[str]
    location: Precision
    purpose: str | None
    rate_per_minute: int
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    def status(self, now: datetime | None = None) -> str:
        now = now or datetime.now(UTC)
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"

    def public(self) -> dict[str, object]:
        """Everything but the hash (safe to print and to return from the API)."""
        return {"token_id": self.token_id, "agent": self.agent, "scopes": sorted(self.scopes),
                "location": self.location, "purpose": self.purpose, "rate_per_minute": self.rate_per_minute,
                "created_at": self.created_at.isoformat(),
                "expires_at": self.expires_at.isoformat() if self.expires_at else None,
                "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None, "status": self.status()}


@dataclass(frozen=True, slots=True, kw_only=True)
class Actor:
    """Who is calling: the verified token's identity and grants (never the secret)."""

    token_id: str
    agent: str
    scopes: frozenset[str]
    location: Precision
    purpose: str | None

    def has(self, scope: str) -> bool:
        """owner grants every scope; location:read at precision "none" grants nothing."""
        if "owner" in self.scopes:
            return True
        return scope in self.scopes and not (scope == "location:read" and self.location == "none")

    @property
    def is_owner(self) -> bool:
        return "owner" in self.scopes

    def redaction(self) -> Redaction:
        """What this caller may see of memories (embeddings.redaction decides; owner sees everything)."""
        if self.location == "none":
            return Redaction.for_scopes(self.scopes - {"location:read"})
        return Redaction.for_scopes(self.scopes, location=self.location)

    @classmethod
    def of(cls, token: Token) -> Actor:
        return cls(token_id=token.token_id, agent=token.agent, scopes=token.scopes, location=token.location,
                   purpose=token.purpose)


@dataclass(frozen=True, slots=True)
class Issued:
    token: Token
    secret: str  # shown once, never stored


def parse_ttl(text: str | None) -> timedelta | None:
    """'30d', '12h', '90m', '3600s', '2w' -> timedelta; None, '', 'never' -> no expiry."""
    if text is None or text.strip().lower() in ("", "never", "none"):
        return None
    m = _TTL_RE.match(text.strip().lower())
    if not m or int(m.group(1)) == 0:
        raise TokenError(f"--ttl {text!r} is not a duration (use e.g. 30d, 12h, 90m, or never)")
    return timedelta(seconds=int(m.group(1)) * _TTL_UNITS[m.group(2)])


def _sha(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _precision(stored: str) -> Precision:
    """A stored precision caveat; anything unknown reads as "none" (the narrowest)."""
    return "coarse" if stored == "coarse" else "precise" if stored == "precise" else "none"


def check_grant(scopes: Collection[str], location: str) -> tuple[frozenset[str], Precision]:
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise TokenError(f"unknown scope {unknown[0]!r} (one of {', '.join(SCOPES)})")
    if not scopes:
        raise TokenError("a token needs at least one --scope")
    if location not in PRECISIONS:
        raise TokenError(f"--location must be none, coarse or precise, not {location!r}")
    return frozenset(scopes), _precision(location)


class TokenStore:
    """Every token of a vault, in memory, kept in step with the api_tokens table (vault.tokens)."""

    def __init__(self, vault: Vault, tokens: dict[str, Token]) -> None:
        self.vault = vault
        self._tokens = tokens
        self._session: tuple[Token, str] | None = None  # (token, secret sha) minted by `serve` for the CLI
        self._lock = threading.Lock()

    @classmethod
    def load(cls, vault: Vault) -> TokenStore:
        tokens = {}
        for row in vault_tokens.stored(vault):
            tokens[row.token_id] = Token(
                token_id=row.token_id, secret_sha256=row.secret_sha256, agent=row.agent, scopes=frozenset(row.scopes),
                location=_precision(row.location),
                purpose=row.purpose, rate_per_minute=row.rate_per_minute, created_at=row.created_at,
                expires_at=row.expires_at, revoked_at=row.revoked_at)
        return cls(vault, tokens)

    # ---- lifecycle ---------------------------------------------------------------------------------
    def create(self, *, agent: str, scopes: Collection[str], location: str = "none",
               ttl: timedelta | None = None, purpose: str | None = None, rate_per_minute: int = DEFAULT_RATE,
               actor: str = "owner") -> Issued:
        agent = agent.strip()
        if not agent or len(agent) > 100:
            raise TokenError("--agent must be a name of 1 to 100 characters")
        if rate_per_minute <= 0:
            raise TokenError("--rate must be a positive number of requests per minute")
        granted, precision = check_grant(list(scopes), location)
        with self._lock:
            token_id = secrets.token_hex(6)
            while token_id in self._tokens:
                token_id = secrets.token_hex(6)
            secret = secrets.token_urlsafe(32)
            now = datetime.now(UTC)
            token = Token(token_id=token_id, secret_sha256=_sha(secret), agent=agent, scopes=granted,
                          location=precision, purpose=purpose, rate_per_minute=rate_per_minute, created_at=now,
                          expires_at=now + ttl if ttl else None, revoked_at=None)
            with self.vault.transaction():
                vault_tokens.insert(self.vault, vault_tokens.StoredToken(
                    token_id=token_id, secret_sha256=token.secret_sha256, agent=agent, scopes=tuple(sorted(granted)),
                    location=precision, purpose=purpose, rate_per_minute=rate_per_minute, created_at=now,
                    expires_at=token.expires_at, revoked_at=None))
                audit.record(self.vault, TokenCreated(
                    actor=actor, token_id=token_id, agent=agent, scopes=sorted(granted), location=precision,
                    purpose=purpose, expires_at=token.expires_at.isoformat() if token.expires_at else None,
                    rate_per_minute=rate_per_minute))
            self._tokens[token_id] = token
        return Issued(token=token, secret=f"{PREFIX}{token_id}_{secret}")

    def revoke(self, token_id: str, *, actor: str = "owner") -> Token:
        with self._lock:
            token = self._tokens.get(token_id)
            if token is None:
                raise TokenError(f"no token {token_id!r} (see `lifevault token list`)")
            if token.revoked_at is not None:
                return token
            at = datetime.now(UTC)
            revoked = replace(token, revoked_at=at)
            with self.vault.transaction():
                vault_tokens.mark_revoked(self.vault, token_id, at)
                audit.record(self.vault, TokenRevoked(actor=actor, token_id=token_id, agent=token.agent,
                                                      scopes=sorted(token.scopes), purpose=token.purpose))
            self._tokens[token_id] = revoked
        return revoked

    def list(self) -> list[Token]:
        return sorted(self._tokens.values(), key=lambda t: t.created_at)

    def get(self, token_id: str) -> Token | None:
        return self._tokens.get(token_id)

    def mint_session_owner(self) -> str:
        """An owner token that lives only in this process's memory (never in the table): `serve` writes it to
        <home>/serve.token (0600) so the user's own CLI can send jobs to the server that owns the vault."""
        secret = secrets.token_urlsafe(32)
        token = Token(token_id=OWNER_SESSION_ID, secret_sha256=_sha(secret), agent="lifevault-cli",
                      scopes=frozenset({"owner"}), location="precise", purpose="jobs sent by the local CLI",
                      rate_per_minute=DEFAULT_RATE * 10, created_at=datetime.now(UTC), expires_at=None, revoked_at=None)
        self._session = (token, token.secret_sha256)
        return f"{PREFIX}{'0' * 12}_{secret}"

    # ---- verification ------------------------------------------------------------------------------
    def verify(self, presented: str, *, now: datetime | None = None) -> Token:
        """The token for this secret, or TokenRefused (malformed, unknown, revoked, expired)."""
        m = _TOKEN_RE.match(presented.strip())
        if not m:
            raise TokenRefused("malformed token")
        token_id, secret = m.groups()
        digest = _sha(secret)
        if token_id == "0" * 12:
            if self._session is not None and hmac.compare_digest(self._session[1], digest):
                return self._session[0]
            raise TokenRefused("unknown token")
        token = self._tokens.get(token_id)
        if token is None:
            hmac.compare_digest(digest, digest)  # same work whether or not the id exists
            raise TokenRefused("unknown token")
        if not hmac.compare_digest(token.secret_sha256, digest):
            raise TokenRefused("unknown token")
        status = token.status(now)
        if status != "active":
            raise TokenRefused(f"token {status}", token)
        return token


class RateLimiter:
    """A token bucket per token: `rate_per_minute` requests, refilled continuously."""

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}  # token id -> (tokens left, last refill)
        self._lock = threading.Lock()

    def allow(self, token_id: str, rate_per_minute: int, *, now: float | None = None) -> float:
        """0.0 when the request may proceed, else the seconds to wait."""
        now = time.monotonic() if now is None else now
        capacity = float(rate_per_minute)
        with self._lock:
            left, last = self._buckets.get(token_id, (capacity, now))
            left = min(capacity, left + (now - last) * capacity / 60.0)
            if left >= 1.0:
                self._buckets[token_id] = (left - 1.0, now)
                return 0.0
            self._buckets[token_id] = (left, now)
            return (1.0 - left) * 60.0 / capacity
