-- Forgetting: which memory first mentioned each entity spelling, so that purging a forgotten
-- memory can give an entity the first mention that remains (exactly what a replay without the
-- memory yields) or remove it when none does. Ordered like projection: facts event position,
-- then order within the event. Projections older than this table need `spectron rebuild` before
-- forgetting entities they hold.
CREATE TABLE entity_mentions (
    memory_id          uuid NOT NULL,
    scope_key          text NOT NULL,
    type               text NOT NULL,
    name_key           text NOT NULL,
    name               text NOT NULL,
    memory_recorded_at timestamptz NOT NULL,
    seen_at            timestamptz NOT NULL,
    partition          int NOT NULL,
    "offset"           bigint NOT NULL,
    ordinal            int NOT NULL,
    PRIMARY KEY (memory_id, type, name_key)
);
CREATE INDEX entity_mentions_entity ON entity_mentions (scope_key, type, name_key);
