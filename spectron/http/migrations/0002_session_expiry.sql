-- Sessions expire when idle and a key may hold only so many: the last use is kept (refreshed at
-- most once a minute) and indexed so expired rows are purged cheaply when sessions are opened.
ALTER TABLE sessions ADD COLUMN last_used_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX sessions_last_used_at ON sessions (last_used_at);
