-- API keys and the sessions opened with them. Only SHA-256 hashes of the secrets are stored.
CREATE TABLE api_keys (
    key_id         text PRIMARY KEY,
    secret_sha256  bytea NOT NULL UNIQUE,
    secret_prefix  text NOT NULL,
    principal      text NOT NULL,
    scope_floor    jsonb NOT NULL,
    capabilities   text[] NOT NULL
        CHECK (capabilities <@ ARRAY['read', 'write', 'forget', 'admin']::text[]),
    description    text NOT NULL DEFAULT '',
    created_at     timestamptz NOT NULL DEFAULT now(),
    revoked_at     timestamptz
);

-- Sessions live in Postgres (not in one server's memory), so any API replica can serve them and
-- they survive a restart. Closing a session deletes its row.
CREATE TABLE sessions (
    session_id  uuid PRIMARY KEY,
    key_id      text NOT NULL REFERENCES api_keys (key_id),
    scope       jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sessions_key_id ON sessions (key_id);
