-- Recall names a narrow view by its scope keys (spectron.recall.view_keys); these indexes lead
-- with scope_key so that the keyword leg reads only the view's rows.
--
-- Lookups by word: with the words indexed alone, Postgres intersected two bitmaps, the word's
-- matches and every memory of the view (linear in the view: 7 ms of a leaf's recall at 100k,
-- 20 ms at 1M). One GIN index over (scope_key, tsv), the scope key indexed by btree_gin (created
-- with vector, spectron.db), answers `scope_key = ANY(view) AND tsv @@ word` inside the index
-- (0.4 ms at 100k). It serves a word alone too (the org's lookups), so it replaces the words-only
-- index.
--
-- The sample, the view's newest memories: taken scope by scope from a btree over (scope_key,
-- recorded_at, memory_id) by index alone. It replaces the scope_key btree, whose lookups it serves.
--
-- A replay that died before this migration dropped the replaced indexes and recorded their
-- definitions for restore_indexes: the records are rewritten for the new ones and the builds left
-- to it (as 0007 does).
UPDATE projection_meta
SET key = 'deferred_index:memories_scope_tsv',
    value = replace(replace(value, 'memories_tsv', 'memories_scope_tsv'), '(tsv)', '(scope_key, tsv)')
WHERE key = 'deferred_index:memories_tsv';
UPDATE projection_meta
SET key = 'deferred_index:memories_scope_recent',
    value = replace(replace(value, 'memories_scope_key', 'memories_scope_recent'),
                    '(scope_key)', '(scope_key, recorded_at, memory_id)')
WHERE key = 'deferred_index:memories_scope_key';
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM projection_meta WHERE key = 'deferred_index:memories_scope_tsv') THEN
        CREATE INDEX memories_scope_tsv ON memories USING gin (scope_key, tsv);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM projection_meta WHERE key = 'deferred_index:memories_scope_recent') THEN
        CREATE INDEX memories_scope_recent ON memories (scope_key, recorded_at, memory_id);
    END IF;
END $$;
-- the keys of the scopes below a reader, found by containment as memories' own index finds them
CREATE INDEX memory_counts_scope ON memory_counts USING gin (scope jsonb_path_ops);
-- dropped last: a drop locks out readers until the migration commits, a build only writers
DROP INDEX IF EXISTS memories_tsv;
DROP INDEX IF EXISTS memories_scope_key;
