"""Spectron as an MCP server (needs `pip install "spectron[mcp]"`).

* `spectron mcp --scope '{...}'`: stdio, on the embedded default, SPECTRON_* settings, or a remote
  server (`--base-url`, `--api-key`) whose key then governs (stdio.py).
* `spectron serve` mounts the streamable-HTTP transport at /mcp behind the API keys (mount.py).
* tools.py defines the tools; access.py decides the base scope and who acts.

Nothing here imports `mcp` at import time, so the HTTP app and CLI load without the extra.
"""

from spectron.mcp.mount import MCP_PATH, mount_mcp

__all__ = ["MCP_PATH", "mount_mcp"]
