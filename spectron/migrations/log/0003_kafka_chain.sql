-- Tamper evidence on Kafka (spectron/log/kafka_chain.py): a producer cannot know its predecessor's
-- hash, so one chainer per partition links the topic's records after the fact. A link keeps the
-- record's digest and its chained hash; the head row is the chainer's position, moved in the same
-- transaction as the links it adds, under the row lock that makes the chainer single per partition.
CREATE TABLE kafka_chain_heads (
    partition   int PRIMARY KEY,
    next_offset bigint NOT NULL DEFAULT 0,
    last_hash   bytea NOT NULL DEFAULT decode(repeat('00', 32), 'hex')
);

CREATE TABLE kafka_chain (
    partition   int NOT NULL,
    "offset"    bigint NOT NULL,
    digest      bytea NOT NULL,
    prev_hash   bytea NOT NULL,
    hash        bytea NOT NULL,
    PRIMARY KEY (partition, "offset")
);
