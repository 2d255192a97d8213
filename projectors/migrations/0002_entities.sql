-- Entity projection: entity types, entities, attribute values with supersession chains, relations.
-- An entity is identified by (scope, type, lower(name)); chains run per entity and attribute key.
-- Every value row carries the log time and position of the memory that asserted it.
CREATE TABLE entity_types (
    scope_key   text NOT NULL,
    scope       jsonb NOT NULL,
    name        text NOT NULL,
    definition  jsonb NOT NULL,
    recorded_at timestamptz NOT NULL,
    PRIMARY KEY (scope_key, name)
);
CREATE INDEX entity_types_scope ON entity_types USING gin (scope jsonb_path_ops);

CREATE TABLE entities (
    scope_key         text NOT NULL,
    scope             jsonb NOT NULL,
    type              text NOT NULL,
    name_key          text NOT NULL,
    name              text NOT NULL,
    first_memory_id   uuid NOT NULL,
    first_recorded_at timestamptz NOT NULL,
    PRIMARY KEY (scope_key, type, name_key)
);
CREATE INDEX entities_scope ON entities USING gin (scope jsonb_path_ops);

-- which extractor's facts a memory's projection used: the first recorded per memory wins
CREATE TABLE fact_sources (
    memory_id   uuid PRIMARY KEY,
    extractor   text NOT NULL,
    recorded_at timestamptz NOT NULL
);

CREATE TABLE attribute_values (
    memory_id     uuid NOT NULL,
    ordinal       int NOT NULL,
    scope_key     text NOT NULL,
    type          text NOT NULL,
    name_key      text NOT NULL,
    key           text NOT NULL,
    value         text NOT NULL,
    cardinality   text NOT NULL,
    extractor     text NOT NULL,
    principal     text NOT NULL,
    recorded_at   timestamptz NOT NULL,
    partition     int NOT NULL,
    "offset"      bigint NOT NULL,
    superseded_by_memory  uuid,
    superseded_by_ordinal int,
    superseded_at timestamptz,
    PRIMARY KEY (memory_id, ordinal)
);
CREATE INDEX attribute_values_chain
    ON attribute_values (scope_key, type, name_key, key, recorded_at, partition, "offset", ordinal);

CREATE TABLE relations (
    memory_id    uuid NOT NULL,
    ordinal      int NOT NULL,
    scope_key    text NOT NULL,
    scope        jsonb NOT NULL,
    subject_type text NOT NULL,
    subject_name text NOT NULL,
    predicate    text NOT NULL,
    object_type  text NOT NULL,
    object_name  text NOT NULL,
    extractor    text NOT NULL,
    principal    text NOT NULL,
    recorded_at  timestamptz NOT NULL,
    PRIMARY KEY (memory_id, ordinal)
);
CREATE INDEX relations_scope ON relations USING gin (scope jsonb_path_ops);
CREATE INDEX relations_scope_key ON relations (scope_key);

CREATE TABLE enrichment_failures (
    memory_id   uuid NOT NULL,
    enricher    text NOT NULL,
    reason      text NOT NULL,
    recorded_at timestamptz NOT NULL,
    partition   int NOT NULL,
    "offset"    bigint NOT NULL,
    PRIMARY KEY (memory_id, enricher)
);
