-- Recall projection: one row per memory, projected from MemoryRecorded; the vector arrives with
-- MemoryEmbedded. Everything here can be dropped and rebuilt from the log.
CREATE TABLE projection_meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);

CREATE TABLE positions (
    consumer    text NOT NULL,
    partition   int NOT NULL,
    next_offset bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (consumer, partition)
);

CREATE TABLE memories (
    memory_id       uuid PRIMARY KEY,
    scope           jsonb NOT NULL,
    scope_key       text NOT NULL,
    content         text NOT NULL,
    memory_category text NOT NULL,
    metadata        jsonb NOT NULL,
    principal       text NOT NULL,
    client_time     timestamptz NOT NULL,
    recorded_at     timestamptz NOT NULL,
    partition       int NOT NULL,
    "offset"        bigint NOT NULL,
    tsv             tsvector GENERATED ALWAYS AS (to_tsvector('english', content)) STORED,
    embedding       vector({{embedding_dim}}),
    embedding_model text,
    embedded_at     timestamptz
);
-- visibility: sub-scopes by containment (GIN), parent scopes by their canonical key (btree)
CREATE INDEX memories_scope ON memories USING gin (scope jsonb_path_ops);
CREATE INDEX memories_scope_key ON memories (scope_key);
CREATE INDEX memories_tsv ON memories USING gin (tsv);
CREATE INDEX memories_embedding ON memories USING hnsw (embedding vector_cosine_ops);
CREATE INDEX memories_unembedded ON memories (partition, "offset") WHERE embedding IS NULL;

CREATE TABLE dead_letters (
    consumer    text NOT NULL,
    partition   int NOT NULL,
    "offset"    bigint NOT NULL,
    recorded_at timestamptz NOT NULL,
    reason      text NOT NULL,
    value       bytea NOT NULL,
    PRIMARY KEY (consumer, partition, "offset")
);

-- OR of tsqueries, so keyword recall matches any query term (plainto/websearch are AND)
CREATE AGGREGATE tsquery_or_agg(tsquery) (SFUNC = tsquery_or, STYPE = tsquery);
