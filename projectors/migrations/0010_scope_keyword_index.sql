-- The keyword leg's lookups by word ask for a view's memories holding a word. With the words
-- indexed alone, Postgres intersected two bitmaps: the word's matches and every memory of the
-- view (linear in the view: 7 ms of a leaf's 100k-store recall, 20 ms at 1M). One GIN index over
-- (scope_key, tsv), the scope key indexed by btree_gin (created with vector, spectron.db),
-- answers `scope_key = ANY(view) AND tsv @@ word` inside the index, skipping through the view's
-- posting lists by the word's few matches (0.4 ms at 100k). It serves a word alone too (the org's
-- lookups), so it replaces the words-only index: one index to keep per insert, as before.
-- A replay that died before this migration dropped the words' index and recorded its definition
-- for restore_indexes: the record is rewritten for the new index and the build left to it.
UPDATE projection_meta
SET key = 'deferred_index:memories_scope_tsv',
    value = replace(replace(value, 'memories_tsv', 'memories_scope_tsv'), '(tsv)', '(scope_key, tsv)')
WHERE key = 'deferred_index:memories_tsv';
DROP INDEX IF EXISTS memories_tsv;
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM projection_meta WHERE key = 'deferred_index:memories_scope_tsv') THEN
        CREATE INDEX memories_scope_tsv ON memories USING gin (scope_key, tsv);
    END IF;
END $$;
