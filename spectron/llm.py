"""A tiny client for OpenAI-compatible chat endpoints that answer JSON under a JSON Schema.

Shared by the LLM extractor (and later an LLM reasoner). No new dependencies: the standard
library's http.client (urllib's own transport, used directly so the socket is reachable) and
orjson. `timeout` is a hard deadline for the whole call: a watchdog shuts the socket down when it
passes, so a server that stalls or drips bytes can never hold a caller longer than that (name
resolution excepted, which no socket timeout bounds).
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from spectron.errors import LLMError

__all__ = ["MAX_ANSWER_BYTES", "LLMError", "chat_json", "post_json"]

# far above any honest chat completion for one memory; a bigger body is hostile or broken
MAX_ANSWER_BYTES = 2 * 1024 * 1024
_EXCERPT = 200


def chat_json(
    base_url: str,
    model: str,
    api_key: str | None,
    messages: Sequence[Mapping[str, str]],
    json_schema: dict[str, Any],
    timeout: float,
    *,
    schema_name: str = "answer",
    temperature: float | None = 0.0,
) -> dict[str, Any]:
    """POST {base_url}/chat/completions with a strict JSON Schema; the answer's JSON object."""
    url = base_url.rstrip("/") + "/chat/completions"
    request: dict[str, Any] = {
        "model": model,
        "messages": [dict(message) for message in messages],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": schema_name, "schema": json_schema, "strict": True},
        },
    }
    if temperature is not None:
        request["temperature"] = temperature
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    status, body = _post(url, orjson.dumps(request), headers, timeout)
    if not 200 <= status < 300:
        raise LLMError(f"{url}: HTTP {status}: {_excerpt(body)}")
    return _answer(url, body)


def post_json(url: str, body: bytes, api_key: str | None, timeout: float) -> Any:
    """POST a JSON body to `url` within `timeout` seconds in total; the answer's parsed JSON."""
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    status, data = _post(url, body, headers, timeout)
    if not 200 <= status < 300:
        raise LLMError(f"{url}: HTTP {status}: {_excerpt(data)}")
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise LLMError(f"{url}: answer is not JSON: {_excerpt(data)}") from exc


def _post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> tuple[int, bytes]:
    """Status and body of one POST, within `timeout` seconds in total."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise LLMError(f"{url}: not an http(s) URL")
    connection_class = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    deadline = time.monotonic() + timeout
    try:
        connection = connection_class(parts.hostname, parts.port, timeout=timeout)
    except ValueError as exc:  # e.g. a malformed port
        raise LLMError(f"{url}: {exc}") from exc
    watchdog: threading.Timer | None = None
    try:
        connection.connect()
        sock = connection.sock
        # per-operation socket timeouts alone let a server that drips bytes run on forever
        watchdog = threading.Timer(max(deadline - time.monotonic(), 0.0), _shut, (sock,))
        watchdog.daemon = True
        watchdog.start()
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        data = response.read(MAX_ANSWER_BYTES + 1)
        if len(data) > MAX_ANSWER_BYTES:
            raise LLMError(f"{url}: answer larger than {MAX_ANSWER_BYTES} bytes")
        if time.monotonic() >= deadline:
            raise LLMError(f"{url}: no complete answer within {timeout:g}s")
        return response.status, data
    except (OSError, http.client.HTTPException) as exc:
        if time.monotonic() >= deadline or isinstance(exc, TimeoutError):
            raise LLMError(f"{url}: no complete answer within {timeout:g}s") from exc
        raise LLMError(f"{url}: {type(exc).__name__}: {exc}") from exc
    finally:
        if watchdog is not None:
            watchdog.cancel()
        connection.close()


def _shut(sock: socket.socket | None) -> None:
    """Wake any read blocked on `sock` (called by the watchdog at the deadline)."""
    if sock is None:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed: nothing left to wake


def _answer(url: str, body: bytes) -> dict[str, Any]:
    """choices[0].message.content of a chat completion, parsed as a JSON object."""
    try:
        completion = orjson.loads(body)
        message = completion["choices"][0]["message"]
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError) as exc:
        raise LLMError(f"{url}: not a chat completion: {_excerpt(body)}") from exc
    if not isinstance(message, dict):
        raise LLMError(f"{url}: not a chat completion: {_excerpt(body)}")
    content = message.get("content")
    if not isinstance(content, str) or not content.strip():
        refusal = message.get("refusal")
        reason = f"model refused: {str(refusal)[:_EXCERPT]}" if refusal else "answer has no content"
        raise LLMError(f"{url}: {reason}")
    try:
        answer = orjson.loads(_unfence(content))
    except orjson.JSONDecodeError as exc:
        raise LLMError(f"{url}: answer content is not JSON: {content[:_EXCERPT]!r}") from exc
    if not isinstance(answer, dict):
        raise LLMError(f"{url}: answer content is JSON but not an object: {content[:_EXCERPT]!r}")
    return answer


def _unfence(content: str) -> str:
    """Content without a ```json fence, which some servers add despite response_format."""
    text = content.strip()
    if len(text) >= 6 and text.startswith("```") and text.endswith("```"):
        text = text[3:-3]
        first, newline, rest = text.partition("\n")
        if newline and not first.strip().startswith(("{", "[")):
            text = rest  # drop the fence's language tag
    return text


def _excerpt(body: bytes) -> str:
    """The start of a response body, printable, for error messages."""
    text = body[:_EXCERPT].decode("utf-8", errors="replace")
    return " ".join(text.split()) + ("…" if len(body) > _EXCERPT else "")
