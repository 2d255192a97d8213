"""Write the API's OpenAPI document (the TypeScript client's types are generated from it).

`python -m spectron.http.openapi [PATH]` writes clients/typescript/openapi.json by default.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from spectron.http.app import create_app

DEFAULT_PATH = Path(__file__).resolve().parents[2] / "clients" / "typescript" / "openapi.json"


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document of `create_app()` (no database needed)."""
    return create_app().openapi()


def render() -> str:
    """The document as the checked-in text: indented JSON with a final newline."""
    return json.dumps(openapi_document(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> None:
    """Write the document to the given path or the TypeScript client's openapi.json."""
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0]) if args else DEFAULT_PATH
    path.write_text(render())
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
