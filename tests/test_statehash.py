"""The state hash is one value per state, whatever the session that computes it."""

from __future__ import annotations

from collections.abc import Callable

from spectron import SpectronClient
from spectron.maintenance import catch_up
from spectron.statehash import projection_hash


async def test_the_state_hash_does_not_depend_on_the_sessions_settings(
    make_client: Callable[..., SpectronClient],
) -> None:
    writer = make_client()
    async with writer.sessions.create(scope={"org": "acme"}) as s:
        await s.remember("Competitor X's Pro tier costs $299/mo.")
        assert (await s.get_state()).entities  # projected, facts and timestamps included
    assert await catch_up(await writer.service()) == 0  # its vector too: nothing moves after
    await writer.close()
    service = await make_client(run_projectors=False).service()
    async with service.pool.connection() as conn:
        await conn.set_autocommit(True)
        try:
            await conn.execute("SET TimeZone = 'UTC'")
            here = await projection_hash(conn)
            await conn.execute("SET TimeZone = 'Asia/Tokyo'")
            await conn.execute("SET DateStyle = 'SQL, DMY'")
            await conn.execute("SET extra_float_digits = 0")
            elsewhere = await projection_hash(conn)
        finally:
            for setting in ("TimeZone", "DateStyle", "extra_float_digits"):
                await conn.execute(f"RESET {setting}")
            await conn.set_autocommit(False)
    assert here == elsewhere
