-- Nest's initial schema, PostgreSQL flavour. Keep in step with
-- ../sqlite/20260601000000_initial.sql: same tables, columns and
-- constraint names (db/error.rs recognises unique violations by them).
--
-- uuids and timestamps are TEXT (RFC 3339 UTC, fixed width); integers are
-- BIGINT and booleans BIGINT 0/1, because sqlx's Any driver reads both
-- backends through the same few types; JSON documents are TEXT. Sortable
-- text columns use the "C" collation, so that order is byte order on both
-- backends (SQLite's default BINARY collation).

CREATE TABLE instances (
    id            TEXT COLLATE "C" NOT NULL,
    project_id    TEXT COLLATE "C" NOT NULL,
    driver        TEXT             NOT NULL,
    status        TEXT             NOT NULL,
    status_reason TEXT,
    vcpus         DOUBLE PRECISION NOT NULL,
    memory_mib    BIGINT           NOT NULL,
    addresses     TEXT             NOT NULL,
    created_at    TEXT COLLATE "C" NOT NULL,
    empty_since   TEXT COLLATE "C",
    CONSTRAINT instances_pkey PRIMARY KEY (id)
);
CREATE INDEX instances_project_status ON instances (project_id, status);

-- `seq` is the stable default sort (Zun's integer `id`).
CREATE TABLE containers (
    seq             BIGINT GENERATED ALWAYS AS IDENTITY,
    uuid            TEXT COLLATE "C" NOT NULL,
    name            TEXT COLLATE "C" NOT NULL,
    project_id      TEXT COLLATE "C" NOT NULL,
    user_id         TEXT COLLATE "C" NOT NULL,
    image           TEXT COLLATE "C" NOT NULL,
    cpu             DOUBLE PRECISION NOT NULL,
    memory_mib      BIGINT           NOT NULL,
    spec            TEXT             NOT NULL,
    status          TEXT COLLATE "C" NOT NULL,
    status_reason   TEXT,
    desired_running BIGINT           NOT NULL CHECK (desired_running IN (0, 1)),
    instance_id     TEXT COLLATE "C" REFERENCES instances (id),
    docker_id       TEXT,
    created_at      TEXT COLLATE "C" NOT NULL,
    updated_at      TEXT COLLATE "C" NOT NULL,
    CONSTRAINT containers_uuid_key PRIMARY KEY (uuid),
    CONSTRAINT containers_seq_key UNIQUE (seq),
    CONSTRAINT containers_project_name_key UNIQUE (project_id, name)
);
CREATE INDEX containers_instance ON containers (instance_id);
CREATE INDEX containers_status ON containers (status);

-- One row per published host port of a bound container: the UNIQUE
-- constraint is what keeps two containers from booking the same host port
-- on one instance, even under concurrent placements.
CREATE TABLE port_bookings (
    instance_id    TEXT COLLATE "C" NOT NULL REFERENCES instances (id),
    protocol       TEXT             NOT NULL,
    host_port      BIGINT           NOT NULL,
    container_uuid TEXT COLLATE "C" NOT NULL REFERENCES containers (uuid) ON DELETE CASCADE,
    CONSTRAINT port_bookings_port_key UNIQUE (instance_id, protocol, host_port)
);
CREATE INDEX port_bookings_container ON port_bookings (container_uuid);

-- Zun's container actions (`GET /v1/containers/{id}/container_actions`).
CREATE TABLE container_actions (
    id             BIGINT GENERATED ALWAYS AS IDENTITY,
    request_id     TEXT COLLATE "C" NOT NULL,
    container_uuid TEXT COLLATE "C" NOT NULL REFERENCES containers (uuid) ON DELETE CASCADE,
    action         TEXT             NOT NULL,
    project_id     TEXT COLLATE "C" NOT NULL,
    user_id        TEXT COLLATE "C" NOT NULL,
    start_time     TEXT COLLATE "C" NOT NULL,
    finish_time    TEXT COLLATE "C",
    message        TEXT,
    CONSTRAINT container_actions_pkey PRIMARY KEY (id),
    CONSTRAINT container_actions_request_key UNIQUE (container_uuid, request_id)
);
