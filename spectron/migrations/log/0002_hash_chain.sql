-- Tamper evidence: every record carries its predecessor's hash and its own (spectron/log/chain.py).
ALTER TABLE partitions ADD COLUMN last_hash bytea NOT NULL DEFAULT decode(repeat('00', 32), 'hex');
ALTER TABLE events ADD COLUMN prev_hash bytea;
ALTER TABLE events ADD COLUMN hash bytea;
