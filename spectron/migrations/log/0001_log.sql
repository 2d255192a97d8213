-- The embedded event log: Kafka's semantics in a table. Offsets are dense per partition because
-- appenders take the partition row lock, number their batch from next_offset and commit together.
CREATE TABLE partitions (
    partition   int PRIMARY KEY,
    next_offset bigint NOT NULL DEFAULT 0,
    -- the log time never goes backwards within a partition, whatever the wall clock does
    last_time   timestamptz NOT NULL DEFAULT '-infinity'
);

CREATE TABLE events (
    partition   int NOT NULL,
    "offset"    bigint NOT NULL,
    recorded_at timestamptz NOT NULL,
    key         bytea,
    value       bytea NOT NULL,
    PRIMARY KEY (partition, "offset")
);
CREATE INDEX events_recorded_at ON events (partition, recorded_at);

-- Positions of consumers whose output is itself appended to the log (enrichment); projector
-- positions live beside their projections so a rebuilt projection starts from zero.
CREATE TABLE consumer_positions (
    consumer    text NOT NULL,
    partition   int NOT NULL,
    next_offset bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (consumer, partition)
);
