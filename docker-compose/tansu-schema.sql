-- PostgreSQL schema for the tansu 0.6.0 broker's `postgres://` storage engine.
--
-- tansu does not create its tables: this file must run once, before the first broker starts.
-- docker-compose/tansu-3.yml delivers it as /docker-entrypoint-initdb.d/tansu.sql, which the
-- postgres image runs (psql, ON_ERROR_STOP) against POSTGRES_DB as POSTGRES_USER on first start.
--
-- Written for faultline from the SQL that tansu-storage 0.6.0 sends (src/sql/*.sql,
-- src/pg/record_fetch.sql and the Rust in src/pg.rs): every column those statements name, with
-- the types the Rust side binds and reads (tokio-postgres checks them exactly: i16 smallint,
-- i32 integer, i64 bigint, Uuid uuid, serde_json::Value jsonb, SystemTime timestamptz, &[u8]
-- bytea), and a unique constraint for every ON CONFLICT target.
-- Notes on what the broker expects:
-- * `record` is written with binary COPY (topition int4, offset_id int8, attributes int2,
--   producer_id int8, producer_epoch int2, timestamp timestamptz, k bytea, v bytea): those types
--   must match exactly. Fetch compares record.transaction_id with
--   pg_snapshot_xmin(pg_current_snapshot()), so it is an xid8 filled by the inserting
--   transaction (default pg_current_xact_id()).
-- * Offsets are assigned under `select ... from watermark ... for no key update`: the watermark
--   row of a partition serialises producers on every broker; (topition, offset_id) is the key.
-- * producer.id is a bigint (Kafka producer ids are int64), producer_epoch.epoch a smallint.
-- * `last_updated` is set from `excluded.last_updated` in upserts: it needs a default.
-- * Foreign keys follow the broker's own delete order (delete topic: offsets, configuration,
--   watermarks, headers, records, txn rows, producer details, partitions, then the topic).
--   They also stop one bug of tansu 0.6.0 from destroying data silently: its topic delete is
--   `delete from topic where topic.cluster in (...)`, every topic of the cluster; with these keys
--   that statement fails (the other topics still have partitions) and the delete is rolled back.
-- * DeleteRecords cannot work: tansu 0.6.0 sends it as inline SQL against columns that no longer
--   exist in its own model (record.id, record.topic, record.partition, record_id_seq).
-- * Loads on PostgreSQL 15 and 16 (xid8 needs 13+). tansu 0.6.0 itself needs 16 for one query,
--   ListOffsets LATEST at read_committed (a FROM subquery without alias): see tansu-3.yml.
-- Not used by the postgres engine and therefore absent: producer.epoch/sequence,
-- txn_detail.epoch/sequence, txn_topition.txn (only in statements the engine never runs).

begin;

create table cluster (
    id serial primary key,
    name text not null unique,                       -- the broker's --cluster-id
    last_updated timestamptz not null default current_timestamp,
    created_at timestamptz not null default current_timestamp
);

create table topic (
    id serial primary key,
    cluster integer not null references cluster (id),
    name text not null,
    uuid uuid not null unique,
    partitions integer not null,
    replication_factor integer not null,
    is_internal boolean not null default false,
    last_updated timestamptz not null default current_timestamp,
    created_at timestamptz not null default current_timestamp,
    unique (cluster, name)                           -- a duplicate is TOPIC_ALREADY_EXISTS
);

create table topic_configuration (
    id serial primary key,
    topic integer not null references topic (id),
    name text not null,
    value text,
    last_updated timestamptz not null default current_timestamp,
    created_at timestamptz not null default current_timestamp,
    unique (topic, name)
);

-- "topition": one partition of a topic
create table topition (
    id serial primary key,
    topic integer not null references topic (id),
    partition integer not null,
    last_updated timestamptz not null default current_timestamp,
    created_at timestamptz not null default current_timestamp,
    unique (topic, partition)
);

create table watermark (
    id serial primary key,
    topition integer not null unique references topition (id),
    low bigint,                                      -- null until the first produce
    high bigint,
    stable bigint,
    last_updated timestamptz not null default current_timestamp,
    created_at timestamptz not null default current_timestamp
);

create table record (
    topition integer not null references topition (id),
    offset_id bigint not null,
    attributes smallint,
    producer_id bigint,
    producer_epoch smallint,
    timestamp timestamptz,
    k bytea,
    v bytea,
    transaction_id xid8 not null default pg_current_xact_id(),
    last_updated timestamptz not null default current_timestamp,
    created_at timestamptz not null default current_timestamp,
    primary key (topition, offset_id)
);

create table header (
    id bigserial primary key,
    topition integer not null,
    offset_id bigint not null,
    k bytea,
    v bytea,
    last_updated timestamptz not null default current_timestamp,
    created_at timestamptz not null default current_timestamp,
    -- retention (cleanup.policy delete/compact) removes records without touching headers
    foreign key (topition, offset_id) references record (topition, offset_id) on delete cascade
);
create index header_record on header (topition, offset_id);

create table consumer_group (
    id serial primary key,
    cluster integer not null references cluster (id),
    name text not null,
    last_updated timestamptz not null default current_timestamp,
    created_at timestamptz not null default current_timestamp,
    unique (cluster, name)
);

-- the group coordinator's state (members, generation, assignments) as a JSON document, replaced
-- by compare-and-set on e_tag
create table consumer_group_detail (
    consumer_group integer primary key references consumer_group (id),
    e_tag uuid not null,
    detail jsonb not null,
    last_updated timestamptz not null default current_timestamp,
    created_at timestamptz not null default current_timestamp
);

create table consumer_offset (
    id serial primary key,
    consumer_group integer not null references consumer_group (id),
    topition integer not null references topition (id),
    committed_offset bigint not null,
    leader_epoch integer,
    timestamp timestamptz,
    metadata text,
    last_updated timestamptz not null default current_timestamp,
    created_at timestamptz not null default current_timestamp,
    unique (consumer_group, topition)
);
create index consumer_offset_topition on consumer_offset (topition);

-- idempotent / transactional producers (InitProducerId)
create table producer (
    id bigserial primary key,
    cluster integer not null references cluster (id),
    last_updated timestamptz not null default current_timestamp,
    created_at timestamptz not null default current_timestamp
);

create table producer_epoch (
    id serial primary key,
    producer bigint not null references producer (id),
    epoch smallint not null,
    last_updated timestamptz not null default current_timestamp,
    created_at timestamptz not null default current_timestamp,
    unique (producer, epoch)
);

-- next expected sequence number per producer epoch and partition
create table producer_detail (
    id serial primary key,
    producer_epoch integer not null references producer_epoch (id),
    topition integer not null references topition (id),
    sequence integer not null default 0,
    last_updated timestamptz not null default current_timestamp,
    created_at timestamptz not null default current_timestamp,
    unique (producer_epoch, topition)
);
create index producer_detail_topition on producer_detail (topition);

create table scram_credential (
    id serial primary key,
    cluster integer not null references cluster (id),
    username text not null,
    mechanism integer not null,
    salt bytea not null,
    iterations integer not null,
    stored_key bytea not null,
    server_key bytea not null,
    last_updated timestamptz not null default current_timestamp,
    created_at timestamptz not null default current_timestamp,
    unique (cluster, username, mechanism)
);

-- transactions (tansu 0.6.0 accepts InitProducerId with a transactional id, AddPartitionsToTxn
-- and TxnOffsetCommit; EndTxn is not supported by its broker)
create table txn (
    id serial primary key,
    cluster integer not null references cluster (id),
    name text not null,                              -- transactional.id
    producer bigint not null references producer (id),
    last_updated timestamptz not null default current_timestamp,
    created_at timestamptz not null default current_timestamp,
    unique (cluster, name)
);

create table txn_detail (
    id serial primary key,
    "transaction" integer not null references txn (id),
    producer_epoch integer not null references producer_epoch (id),
    transaction_timeout_ms integer not null,
    status text,                                     -- BEGIN, PREPARE_COMMIT, ... COMMITTED
    started_at timestamptz,
    last_updated timestamptz not null default current_timestamp,
    created_at timestamptz not null default current_timestamp,
    unique ("transaction", producer_epoch)
);

create table txn_topition (
    id serial primary key,
    txn_detail integer not null references txn_detail (id),
    topition integer not null references topition (id),
    last_updated timestamptz not null default current_timestamp,
    created_at timestamptz not null default current_timestamp
);

create table txn_produce_offset (
    id serial primary key,
    txn_topition integer not null unique references txn_topition (id),
    offset_start bigint not null,
    offset_end bigint not null,
    last_updated timestamptz not null default current_timestamp,
    created_at timestamptz not null default current_timestamp
);

create table txn_offset_commit (
    id serial primary key,
    txn_detail integer not null references txn_detail (id),
    consumer_group integer not null references consumer_group (id),
    generation_id integer,
    member_id text,
    last_updated timestamptz not null default current_timestamp,
    created_at timestamptz not null default current_timestamp
);

create table txn_offset_commit_tp (
    id serial primary key,
    offset_commit integer not null references txn_offset_commit (id),
    topition integer not null references topition (id),
    committed_offset bigint not null,
    leader_epoch integer,
    metadata text,
    last_updated timestamptz not null default current_timestamp,
    created_at timestamptz not null default current_timestamp
);

commit;
