-- The projection stages a memory's vector here (a plain insert); the vector mover
-- (projectors.vector_index) moves it into memories.embedding, where the HNSW graph takes it, behind
-- the projection position. So a memory is keyword-visible without waiting for graph inserts of the
-- vectors logged before it. Empty whenever the projection has settled: nothing here is state.
CREATE TABLE staged_vectors (
    memory_id   uuid PRIMARY KEY,
    embedding   halfvec({{embedding_dim}}) NOT NULL,
    model       text NOT NULL,
    embedded_at timestamptz NOT NULL,
    staged      bigint GENERATED ALWAYS AS IDENTITY
);
CREATE INDEX staged_vectors_order ON staged_vectors (staged);
