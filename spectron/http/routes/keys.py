"""API keys: create, list and revoke the keys a caller manages (its key needs `admin`)."""

from __future__ import annotations

from fastapi import APIRouter

from spectron.errors import Forbidden, KeyNotFound, ScopeOutsideFloor
from spectron.http import keys as keystore
from spectron.http.bodies import KeyCreate, KeyCreated, KeyInfo
from spectron.http.deps import AUTH, Caller, Service
from spectron.http.routing import SpectronRoute
from spectron.scope import is_within

router = APIRouter(route_class=SpectronRoute, tags=["keys"], dependencies=AUTH)


@router.post("/v1/keys", status_code=201)
async def create_key(body: KeyCreate, caller: Caller, service: Service) -> KeyCreated:
    """Create a key (needs `admin`) at or below the caller's floor, with a subset of its caps."""
    caller.require("admin")
    floor = keystore.check_floor(body.scope_floor)
    if not is_within(floor, caller.scope_floor):
        raise ScopeOutsideFloor(f"the new floor {floor} is not within {caller.scope_floor}")
    if not set(body.capabilities) <= caller.capabilities:
        raise Forbidden("a key cannot grant capabilities it does not have")
    async with service.pool.connection() as conn:
        key, secret = await keystore.create_key(
            conn, body.principal, floor, body.capabilities, body.description
        )
    return KeyCreated(**key.public(), secret=secret)


@router.get("/v1/keys")
async def list_keys(caller: Caller, service: Service) -> list[KeyInfo]:
    """Keys the caller manages: floor at or below its own, no capability it lacks (needs `admin`)."""
    caller.require("admin")
    async with service.pool.connection() as conn:
        found = await keystore.list_keys(conn)
    return [KeyInfo(**key.public()) for key in found if caller.manages(key)]


@router.delete("/v1/keys/{key_id}")
async def revoke_key(key_id: str, caller: Caller, service: Service) -> KeyInfo:
    """Revoke a key the caller manages (needs `admin`); its sessions close."""
    caller.require("admin")
    async with service.pool.connection() as conn:
        key = await keystore.get_key(conn, key_id)
        if key is None or not caller.manages(key):
            raise KeyNotFound(f"no API key {key_id!r} that this key manages")
        revoked = await keystore.revoke_key(conn, key_id)
    assert revoked is not None
    return KeyInfo(**revoked.public())
