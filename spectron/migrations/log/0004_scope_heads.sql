-- Read your writes (DESIGN rule 3, spectron/log/owed.py): per scope, the offset after its last
-- acknowledged write (events derived from memories excluded), so a reader waits for the writes its
-- scope can see and not for enrichment output queued behind them. A '*' row is a floor every reader
-- owes: what was appended before this table existed, and records appended raw (scope unknown).
CREATE TABLE scope_heads (
    scope_key   text NOT NULL,
    partition   int NOT NULL,
    scope       jsonb NOT NULL,
    next_offset bigint NOT NULL,
    PRIMARY KEY (scope_key, partition)
);
CREATE INDEX scope_heads_scope ON scope_heads USING gin (scope jsonb_path_ops);

INSERT INTO scope_heads (scope_key, partition, scope, next_offset)
SELECT '*', partition, '{}'::jsonb, next_offset FROM partitions WHERE next_offset > 0;
