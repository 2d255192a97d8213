-- Recall lends part of a hit's score to the memories written just before and after it in the
-- same scope (the turns around a conversation turn): find them in log order by index.
CREATE INDEX memories_scope_order ON memories (scope_key, partition, "offset");
