-- How many memories each scope holds, by category and principal. Profile reads these few rows
-- (one per scope, category and principal) instead of grouping every memory a scope sees, which
-- grew with the store: 0.5 s for the org's view at 1M memories. Like an index, the table is kept
-- by the database from the rows of memories alone, whichever path inserts or deletes them
-- (projection, replay, forget), so it is never a second definition of an event's effect and a
-- replay rebuilds it with the memories.
CREATE TABLE memory_counts (
    scope_key       text NOT NULL,
    memory_category text NOT NULL,
    principal       text NOT NULL,
    scope           jsonb NOT NULL,
    memories        bigint NOT NULL CHECK (memories > 0),
    PRIMARY KEY (scope_key, memory_category, principal)
);

-- Statement triggers with transition tables: a coalesced multi-row insert (projectors.coalesce)
-- costs one upsert per scope, not one per row. Each statement takes its rows in key order; a
-- scope's inserts come from its one partition's projection, and forgets (the deletes) hold the
-- forget lock that projection batches share (spectron.sealing.FORGET_LOCK), so a purge never
-- waits on a batch's counts nor a batch on a purge's. Names resolve through the search_path, as
-- every projector statement's do (a rebuilt projection is built under another name, then
-- renamed): static SQL keeps its plan, which dynamic SQL naming the trigger's schema re-made per
-- statement (~7 us against ~70 us per single-row insert, measured).
CREATE FUNCTION memory_counts_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO memory_counts AS c (scope_key, memory_category, principal, scope, memories)
    SELECT scope_key, memory_category, principal, (array_agg(scope))[1], count(*)
    FROM inserted GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT (scope_key, memory_category, principal)
    DO UPDATE SET memories = c.memories + EXCLUDED.memories;
    RETURN NULL;
END $$;

CREATE FUNCTION memory_counts_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH gone AS (
        SELECT scope_key, memory_category, principal, count(*) AS n FROM deleted GROUP BY 1, 2, 3
    ), locked AS (
        SELECT c.scope_key, c.memory_category, c.principal, c.memories - gone.n AS remaining
        FROM memory_counts c JOIN gone USING (scope_key, memory_category, principal)
        ORDER BY 1, 2, 3 FOR UPDATE OF c
    ), emptied AS (  -- a count reaching zero goes: a replay would never have made its row
        DELETE FROM memory_counts c USING locked l
        WHERE l.remaining = 0 AND (c.scope_key, c.memory_category, c.principal)
            = (l.scope_key, l.memory_category, l.principal)
    )
    UPDATE memory_counts c SET memories = l.remaining FROM locked l
    WHERE l.remaining > 0 AND (c.scope_key, c.memory_category, c.principal)
        = (l.scope_key, l.memory_category, l.principal);
    RETURN NULL;
END $$;

CREATE TRIGGER memory_counts_insert AFTER INSERT ON memories
    REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION memory_counts_inserted();
CREATE TRIGGER memory_counts_delete AFTER DELETE ON memories
    REFERENCING OLD TABLE AS deleted FOR EACH STATEMENT EXECUTE FUNCTION memory_counts_deleted();

-- the counts from scratch: a store projected before this migration (below), and the end of a
-- replay, which defers them (projectors.replay)
CREATE FUNCTION memory_counts_recount() RETURNS void LANGUAGE sql AS $$
    DELETE FROM memory_counts;
    INSERT INTO memory_counts (scope_key, memory_category, principal, scope, memories)
    SELECT scope_key, memory_category, principal, (array_agg(scope))[1], count(*)
    FROM memories GROUP BY 1, 2, 3;
$$;

SELECT memory_counts_recount();
