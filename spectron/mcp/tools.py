"""The MCP tools: Spectron's session API with the same parameter names, for a model to call.

Every tool resolves its `scope` against the caller's base scope (see access.py), calls one session
operation, and answers with text a model can read plus the JSON as structured content. Bad input
is a tool error with a message saying what to fix; nothing is appended.
"""

# no `from __future__ import annotations`: the SDK reads these signatures at runtime

import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal, TypeVar

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from spectron.asof import AsOf
from spectron.errors import SpectronError
from spectron.events import LogPosition
from spectron.forgetting import ForgetResult
from spectron.history import HistoryEntry
from spectron.mcp.access import Access, resolve_scope
from spectron.models import RememberResult
from spectron.service import MAX_TOP_K
from spectron.session import Session

T = TypeVar("T")
AccessOf = Callable[[Context], Access]

INSTRUCTIONS = """Spectron is long-term memory shared by a team of agents, kept per scope.
A scope is a JSON object such as {"org": "acme", "project": "p1"}; every tool works at this
server's base scope unless you pass `scope`, which may only add dimensions to the base
(e.g. {..., "agent": "w1"} for one worker's private memory), never leave it.
Call `recall` before answering questions that earlier work may have covered, and `remember`
durable facts, decisions and preferences worth keeping. `get_state` and `history` show structured
facts and how they changed; `reflect` synthesises; `forget` erases for good."""

ScopeArg = Annotated[
    dict[str, str] | None,
    Field(
        description="Where to act: omit for the base scope, or pass the base scope plus more"
        ' dimensions (a sub-scope), e.g. {"org": "acme", "project": "p1", "agent": "w1"}.'
    ),
]
AsOfArg = Annotated[
    str | None,
    Field(
        description="Answer as the memory stood at this log time (ISO 8601, e.g."
        ' "2026-11-20T10:00:00Z") or log position ("partition:offset"). Omit for now.'
    ),
]
# spectron.validation.MEMORY_CATEGORIES, spelled out for the schema (a test keeps them equal)
Category = Literal["knowledge", "episodic", "preference", "procedural", "reflection"]
CategoryArg = Annotated[
    Category | None,
    Field(description="Only memories of this category."),
]
MetadataFilter = Annotated[
    dict[str, Any] | None,
    Field(description="Only memories whose metadata contains these key/value pairs."),
]
READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)
APPENDS = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False)
ERASES = ToolAnnotations(read_only_hint=False, destructive_hint=True, open_world_hint=False)


def parse_as_of(text: str | None) -> AsOf:
    """'partition:offset' is a log position; anything else is an ISO time, checked by the service."""
    if text is not None and text.count(":") == 1 and all(p.isdigit() for p in text.split(":")):
        partition, offset = text.split(":")
        return LogPosition(int(partition), int(offset))
    return text


def answer(text: str, data: BaseModel | dict[str, Any]) -> CallToolResult:
    """A tool result: text for the model, the JSON as structured content."""
    structured = data.model_dump(mode="json") if isinstance(data, BaseModel) else data
    return CallToolResult(
        content=[TextContent(type="text", text=text)], structured_content=structured
    )


async def _call(
    access: Access, scope: dict[str, str] | None, op: Callable[[Session], Awaitable[T]]
) -> T:
    """Run `op` in a session at the resolved scope; Spectron's errors become tool errors."""
    try:
        async with access.session(resolve_scope(access, scope)) as session:
            return await op(session)
    except SpectronError as exc:
        raise ToolError(f"{exc.type}: {exc}") from exc


def _remembered(result: RememberResult, scope: dict[str, str]) -> str:
    return (
        f"Remembered as memory {result.id} at scope {scope}"
        f" (log partition {result.partition}, offset {result.offset}, {result.recorded_at:%Y-%m-%d %H:%M:%S} UTC)."
    )


def _history_text(entity: str, entries: list[HistoryEntry]) -> str:
    if not entries:
        return f"No recorded values for {entity!r} at or below this scope."
    lines = [f"History of {entity} (oldest first):"]
    for e in entries:
        then = (
            f"; superseded by {e.superseded_by!r} at {e.superseded_at:%Y-%m-%d %H:%M:%S}"
            if e.superseded_by is not None and e.superseded_at is not None
            else ("; superseded" if e.superseded_by is not None else "; current")
        )
        lines.append(
            f"- {e.entity_type}/{e.entity}.{e.key} = {e.value!r} by {e.principal}"
            f" at {e.recorded_at:%Y-%m-%d %H:%M:%S} UTC (memory {e.memory_id}){then}"
        )
    return "\n".join(lines)


def _forgot_text(result: ForgetResult) -> str:
    if not result.forgotten:
        return "Nothing matched: no memory was forgotten."
    text = f"Forgot {len(result.forgotten)} memories (crypto-shredded): " + ", ".join(
        str(i) for i in result.forgotten
    )
    if result.citing_reflections:
        text += (
            "\nPersisted reflections still cite them (forget these too if they must go): "
            + ", ".join(str(i) for i in result.citing_reflections)
        )
    return text


def build_server(access_of: AccessOf, name: str = "spectron") -> MCPServer:
    """An MCP server whose tools act through the Access that `access_of` gives for each call."""
    server: MCPServer = MCPServer(name, instructions=INSTRUCTIONS, version=_version())

    @server.tool(annotations=APPENDS, structured_output=False)
    async def remember(
        ctx: Context,
        content: Annotated[str, Field(description="The memory, as a self-contained statement.")],
        memory_category: Annotated[
            Category,
            Field(
                description="knowledge (facts), episodic (what happened), preference,"
                " procedural (how to), reflection."
            ),
        ] = "knowledge",
        metadata: Annotated[
            dict[str, Any] | None,
            Field(description='Provenance as a JSON object, e.g. {"source": "interview-7"}.'),
        ] = None,
        facts: Annotated[
            dict[str, Any] | list[Any] | None,
            Field(
                description="Structured facts (entities, attributes, relations) to record"
                " instead of automatic extraction. Usually omit."
            ),
        ] = None,
        scope: ScopeArg = None,
    ) -> CallToolResult:
        """Store a memory that every agent whose scope can see it will recall later.

        Use for durable facts, decisions, findings and preferences; one idea per call.
        Returns the memory id (needed by `forget`)."""

        async def write(session: Session) -> tuple[dict[str, str], RememberResult]:
            return session.scope, await session.remember(content, memory_category, metadata, facts)

        where, result = await _call(access_of(ctx), scope, write)
        return answer(_remembered(result, where), result)

    @server.tool(annotations=READ_ONLY, structured_output=False)
    async def recall(
        ctx: Context,
        query: Annotated[str, Field(description="What you want to know, in plain words.")],
        top_k: Annotated[int, Field(ge=1, le=MAX_TOP_K, description="How many memories.")] = 5,
        memory_category: CategoryArg = None,
        metadata: MetadataFilter = None,
        mode: Annotated[
            Literal["hybrid", "dense", "keyword"],
            Field(description="hybrid (default) fuses meaning and keywords."),
        ] = "hybrid",
        as_of: AsOfArg = None,
        scope: ScopeArg = None,
    ) -> CallToolResult:
        """Search memory visible from the scope (its own, its parents', its sub-scopes') for the query.

        Returns the best matches with their source (scope, writer, time, id) as a block to read
        before answering. Sees writes that returned before the call."""
        result = await _call(
            access_of(ctx),
            scope,
            lambda s: s.recall(
                query,
                top_k,
                memory_category=memory_category,
                metadata=metadata,
                mode=mode,
                as_of=parse_as_of(as_of),
            ),
        )
        return answer(result.formatted, result)

    @server.tool(annotations=READ_ONLY, structured_output=False)
    async def get_state(
        ctx: Context, scope: ScopeArg = None, as_of: AsOfArg = None
    ) -> CallToolResult:
        """Structured facts visible from the scope: entities, their attributes and relations.

        Superseded values are shown with what replaced them, so conflicts between agents are
        visible."""
        state = await _call(access_of(ctx), scope, lambda s: s.get_state(as_of=parse_as_of(as_of)))
        return answer(state.formatted, state)

    @server.tool(annotations=READ_ONLY, structured_output=False)
    async def history(
        ctx: Context,
        entity: Annotated[str, Field(description="The entity's name, e.g. 'Competitor X'.")],
        attribute: Annotated[
            str | None, Field(description="One attribute key, e.g. 'price'; omit for all.")
        ] = None,
        scope: ScopeArg = None,
    ) -> CallToolResult:
        """Every value an entity's attribute(s) had, oldest first: who wrote it, when, what replaced it."""
        entries = await _call(access_of(ctx), scope, lambda s: s.history(entity, attribute))
        data = {"entries": [e.model_dump(mode="json") for e in entries]}
        return answer(_history_text(entity, entries), data)

    @server.tool(annotations=APPENDS, structured_output=False)
    async def reflect(
        ctx: Context,
        query: Annotated[str, Field(description="The question to synthesise an answer to.")],
        persist: Annotated[
            bool, Field(description="Record the synthesis as a reflection memory.")
        ] = False,
        scope: ScopeArg = None,
    ) -> CallToolResult:
        """Synthesise what the scope knows about a question: a summary citing memory ids, plus what is uncertain.

        With persist=true the summary is remembered as a reflection (shown by `profile`)."""
        result = await _call(access_of(ctx), scope, lambda s: s.reflect(query, persist))
        text = result.summary
        if result.uncertain:
            text += "\nUncertain:\n" + "\n".join(f"- {u}" for u in result.uncertain)
        if result.persisted:
            text += f"\n(Persisted as reflection memory {result.id}.)"
        return answer(text, result)

    @server.tool(annotations=READ_ONLY, structured_output=False)
    async def profile(
        ctx: Context, scope: ScopeArg = None, as_of: AsOfArg = None
    ) -> CallToolResult:
        """The scope at a glance: current facts, persisted reflections, who contributed, recent memories."""
        result = await _call(access_of(ctx), scope, lambda s: s.profile(as_of=parse_as_of(as_of)))
        return answer(result.formatted, result)

    @server.tool(annotations=ERASES, structured_output=False)
    async def forget(
        ctx: Context,
        memory_id: Annotated[
            str | None,
            Field(description="The id of one memory to erase (from remember or recall)."),
        ] = None,
        where: Annotated[
            dict[str, Any] | None,
            Field(
                description="Erase every memory at or below the scope matching this filter:"
                " memory_category, principal, metadata (containment), before, after (ISO times)."
            ),
        ] = None,
        scope: ScopeArg = None,
    ) -> CallToolResult:
        """Erase memories for good (crypto-shredded): one memory by id, or those at or below the scope matching `where`.

        Irreversible. Give memory_id or where, not both."""
        if (memory_id is None) == (where is None):
            raise ToolError("invalid-input: give exactly one of memory_id or where")
        if memory_id is not None:
            try:
                uuid.UUID(memory_id)
            except ValueError:
                raise ToolError(f"invalid-input: memory_id {memory_id!r} is not a UUID") from None
        result = await _call(access_of(ctx), scope, lambda s: s.forget(memory_id, where=where))
        return answer(_forgot_text(result), result)

    return server


def _version() -> str:
    from spectron import __version__

    return __version__


__all__ = ["INSTRUCTIONS", "AccessOf", "build_server", "parse_as_of"]
