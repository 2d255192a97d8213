-- Persisted reflections: the recorded synthesis, its query, sources and open questions. The summary
-- is also a memory (category 'reflection') in the recall index, under the same id.
CREATE TABLE reflections (
    reflection_id uuid PRIMARY KEY,
    scope         jsonb NOT NULL,
    scope_key     text NOT NULL,
    query         text NOT NULL,
    summary       text NOT NULL,
    sources       uuid[] NOT NULL,
    uncertain     text[] NOT NULL,
    reasoner      text NOT NULL,
    principal     text NOT NULL,
    recorded_at   timestamptz NOT NULL,
    partition     int NOT NULL,
    "offset"      bigint NOT NULL
);
CREATE INDEX reflections_scope ON reflections USING gin (scope jsonb_path_ops);
CREATE INDEX reflections_scope_key ON reflections (scope_key);
