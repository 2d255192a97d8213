-- Time travel (DESIGN rule 5): facts become true when their facts event is logged, which may be
-- after the memory that states them; record that time, and which event carried them.
ALTER TABLE attribute_values ADD COLUMN valid_from timestamptz;
ALTER TABLE attribute_values ADD COLUMN source_event uuid;
ALTER TABLE relations ADD COLUMN valid_from timestamptz;
ALTER TABLE entities ADD COLUMN first_seen_at timestamptz;
CREATE INDEX memories_recorded_at ON memories (recorded_at);
