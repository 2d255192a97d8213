-- Data keys: one random AES-256 key per memory, held here and never in the log. The log keeps only
-- ciphertext of a memory's content and of what was derived from it (vector, facts, failure
-- reasons); forgetting destroys the key (crypto-shredding) so the log never has to be rewritten.
-- A row whose key is NULL is a forgotten memory: replay and enrichment pass over it.
CREATE TABLE data_keys (
    memory_id    uuid PRIMARY KEY,
    scope        jsonb NOT NULL,
    scope_key    text NOT NULL,
    key          bytea,
    created_at   timestamptz NOT NULL DEFAULT now(),
    forgotten_at timestamptz,
    CHECK ((key IS NULL) = (forgotten_at IS NOT NULL))
);
-- no index on scope: forgetting a scope scans (rare), remembering inserts (hot)
