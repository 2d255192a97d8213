"""API keys: random secrets shown once and stored as SHA-256, each with a principal, a scope floor and
capabilities. Tables live in the Postgres schema `spectron_auth` (migrations in ./migrations).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from importlib.resources import files
from typing import Any, Literal, cast, get_args

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from spectron.errors import InvalidInput, MissingCapability, ScopeOutsideFloor, Unauthenticated
from spectron.migrations import migrate
from spectron.scope import Scope, canonical_scope, is_within
from spectron.validation import check_text

AUTH_SCHEMA = "spectron_auth"
KEY_MIGRATIONS = files("spectron.http") / "migrations"
Capability = Literal["read", "write", "forget", "admin"]
CAPABILITIES: tuple[Capability, ...] = get_args(Capability)
SECRET_PREFIX = "sk_"
# principals name who wrote (e.g. agent:w1, user:ann@example.com); no spaces, bounded like events
PRINCIPAL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@:/+\-]{0,127}$"
_PRINCIPAL = re.compile(PRINCIPAL_PATTERN)
MAX_DESCRIPTION_CHARS = 500
KEY_ID_CHARS = 64
_COLUMNS = (
    "key_id, secret_prefix, principal, scope_floor, capabilities, description, created_at,"
    " revoked_at"
)


@dataclass(frozen=True)
class ApiKey:
    """A stored key (never its secret): who it stamps on events, where it may go, what it may do."""

    key_id: str
    secret_prefix: str
    principal: str
    scope_floor: Scope
    capabilities: frozenset[Capability]
    description: str
    created_at: datetime
    revoked_at: datetime | None

    def require(self, capability: Capability) -> None:
        """Raise MissingCapability unless the key has `capability`."""
        if capability not in self.capabilities:
            raise MissingCapability(
                f"API key {self.key_id} lacks the {capability!r} capability"
                f" (it has: {', '.join(sorted(self.capabilities)) or 'none'})"
            )

    def require_scope(self, scope: Scope) -> None:
        """Raise ScopeOutsideFloor unless `scope` contains the key's floor (floor ⊆ scope)."""
        if not is_within(scope, self.scope_floor):
            raise ScopeOutsideFloor(
                f"API key {self.key_id} may only open scopes containing {self.scope_floor};"
                f" {scope} does not"
            )

    def manages(self, other: ApiKey) -> bool:
        """An admin manages keys at or below its floor with no capability it lacks itself."""
        return is_within(other.scope_floor, self.scope_floor) and (
            other.capabilities <= self.capabilities
        )

    def public(self) -> dict[str, Any]:
        """The key as JSON for listings (no secret, no hash)."""
        return {
            "key_id": self.key_id,
            "secret_prefix": self.secret_prefix,
            "principal": self.principal,
            "scope_floor": self.scope_floor,
            "capabilities": sorted(self.capabilities),
            "description": self.description,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
        }


def check_principal(principal: Any) -> str:
    """Return a valid principal or raise InvalidInput."""
    if not isinstance(principal, str) or not _PRINCIPAL.fullmatch(principal):
        raise InvalidInput(
            f"principal {principal!r} must match {PRINCIPAL_PATTERN} (e.g. 'agent:w1')"
        )
    return principal


def check_floor(floor: Any) -> Scope:
    """A canonical scope floor; `{}` is the unrestricted floor (every scope contains it)."""
    if isinstance(floor, dict) and not floor:
        return {}
    return canonical_scope(floor)


def parse_capabilities(value: str | Iterable[str]) -> frozenset[Capability]:
    """Capabilities from "read,write" or a list; raise InvalidInput for unknown or none."""
    items = value.split(",") if isinstance(value, str) else list(value)
    names = {item.strip() for item in items if item.strip()}
    unknown = names - set(CAPABILITIES)
    if unknown or not names:
        raise InvalidInput(
            f"capabilities must be a non-empty subset of {', '.join(CAPABILITIES)};"
            f" got {', '.join(sorted(names)) or 'none'}"
        )
    return frozenset(cast(Capability, name) for name in names)


def hash_secret(secret: str) -> bytes:
    """SHA-256 of a secret: keys are high-entropy, so a plain hash is what to store and look up."""
    return hashlib.sha256(secret.encode()).digest()


async def migrate_keys(conn: AsyncConnection[Any]) -> None:
    """Create or upgrade the `spectron_auth` schema."""
    await migrate(conn, AUTH_SCHEMA, KEY_MIGRATIONS)


def _row_to_key(row: tuple[Any, ...]) -> ApiKey:
    key_id, prefix, principal, floor, caps, description, created_at, revoked_at = row
    return ApiKey(
        key_id=key_id,
        secret_prefix=prefix,
        principal=principal,
        scope_floor=dict(floor),
        capabilities=frozenset(caps),
        description=description,
        created_at=created_at,
        revoked_at=revoked_at,
    )


async def create_key(
    conn: AsyncConnection[Any],
    principal: Any,
    scope_floor: Any,
    capabilities: str | Iterable[str],
    description: str = "",
) -> tuple[ApiKey, str]:
    """Store a new key; return it and its secret, which is shown this once and never stored."""
    principal = check_principal(principal)
    floor = check_floor(scope_floor)
    caps = parse_capabilities(capabilities)
    description = check_text(description, "description", MAX_DESCRIPTION_CHARS, blank=True)
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    key_id = "key_" + secrets.token_hex(8)
    cur = await conn.execute(
        f"INSERT INTO {AUTH_SCHEMA}.api_keys"
        " (key_id, secret_sha256, secret_prefix, principal, scope_floor, capabilities, description)"
        f" VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING {_COLUMNS}",
        [
            key_id,
            hash_secret(secret),
            secret[:10],
            principal,
            Jsonb(floor),
            sorted(caps),
            description,
        ],
    )
    row = await cur.fetchone()
    assert row is not None
    return _row_to_key(row), secret


async def list_keys(conn: AsyncConnection[Any]) -> list[ApiKey]:
    """Every key, oldest first."""
    cur = await conn.execute(f"SELECT {_COLUMNS} FROM {AUTH_SCHEMA}.api_keys ORDER BY created_at")
    return [_row_to_key(row) for row in await cur.fetchall()]


async def get_key(conn: AsyncConnection[Any], key_id: str) -> ApiKey | None:
    """One key by id, revoked or not."""
    check_text(key_id, "key id", KEY_ID_CHARS)
    cur = await conn.execute(
        f"SELECT {_COLUMNS} FROM {AUTH_SCHEMA}.api_keys WHERE key_id = %s", [key_id]
    )
    row = await cur.fetchone()
    return _row_to_key(row) if row else None


async def revoke_key(conn: AsyncConnection[Any], key_id: str) -> ApiKey | None:
    """Revoke a key (idempotent; the first revocation time stays) and close its sessions."""
    cur = await conn.execute(
        f"UPDATE {AUTH_SCHEMA}.api_keys SET revoked_at = coalesce(revoked_at, now())"
        f" WHERE key_id = %s RETURNING {_COLUMNS}",
        [key_id],
    )
    row = await cur.fetchone()
    await conn.execute(f"DELETE FROM {AUTH_SCHEMA}.sessions WHERE key_id = %s", [key_id])
    return _row_to_key(row) if row else None


async def authenticate(conn: AsyncConnection[Any], secret: str | None) -> ApiKey:
    """The live key whose secret this is; raise Unauthenticated for none, unknown or revoked."""
    if not secret:
        raise Unauthenticated("an API key is required: send 'Authorization: Bearer sk_...'")
    cur = await conn.execute(
        f"SELECT {_COLUMNS} FROM {AUTH_SCHEMA}.api_keys WHERE secret_sha256 = %s",
        [hash_secret(secret)],
    )
    row = await cur.fetchone()
    if row is None:
        raise Unauthenticated("unknown API key")
    key = _row_to_key(row)
    if key.revoked_at is not None:
        raise Unauthenticated(f"API key {key.key_id} was revoked")
    return key
