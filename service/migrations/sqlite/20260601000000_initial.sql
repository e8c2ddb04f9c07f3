-- Nest's initial schema, SQLite flavour. Keep in step with
-- ../postgres/20260601000000_initial.sql: same tables, columns and
-- constraint names (db/error.rs recognises unique violations by them).
--
-- uuids and timestamps are TEXT (RFC 3339 UTC, fixed width, so that text
-- order is time order); booleans are INTEGER 0/1 (sqlx's Any driver has no
-- SQLite BOOLEAN); JSON documents are TEXT.

CREATE TABLE instances (
    id            TEXT    NOT NULL,
    project_id    TEXT    NOT NULL,
    driver        TEXT    NOT NULL,
    status        TEXT    NOT NULL,
    status_reason TEXT,
    vcpus         REAL    NOT NULL,
    memory_mib    INTEGER NOT NULL,
    addresses     TEXT    NOT NULL,
    created_at    TEXT    NOT NULL,
    empty_since   TEXT,
    CONSTRAINT instances_pkey PRIMARY KEY (id)
);
CREATE INDEX instances_project_status ON instances (project_id, status);

-- `seq` is the stable default sort (Zun's integer `id`). SQLite only allows
-- AUTOINCREMENT on the primary key, so here `seq` is the primary key and the
-- uuid is UNIQUE NOT NULL; PostgreSQL has it the other way round.
CREATE TABLE containers (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid            TEXT    NOT NULL,
    name            TEXT    NOT NULL,
    project_id      TEXT    NOT NULL,
    user_id         TEXT    NOT NULL,
    image           TEXT    NOT NULL,
    cpu             REAL    NOT NULL,
    memory_mib      INTEGER NOT NULL,
    spec            TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    status_reason   TEXT,
    desired_running INTEGER NOT NULL CHECK (desired_running IN (0, 1)),
    instance_id     TEXT    REFERENCES instances (id),
    docker_id       TEXT,
    created_at      TEXT    NOT NULL,
    updated_at      TEXT    NOT NULL,
    CONSTRAINT containers_uuid_key UNIQUE (uuid),
    CONSTRAINT containers_project_name_key UNIQUE (project_id, name)
);
CREATE INDEX containers_instance ON containers (instance_id);
CREATE INDEX containers_status ON containers (status);

-- One row per published host port of a bound container: the UNIQUE
-- constraint is what keeps two containers from booking the same host port
-- on one instance, even under concurrent placements.
CREATE TABLE port_bookings (
    instance_id    TEXT    NOT NULL REFERENCES instances (id),
    protocol       TEXT    NOT NULL,
    host_port      INTEGER NOT NULL,
    container_uuid TEXT    NOT NULL REFERENCES containers (uuid) ON DELETE CASCADE,
    CONSTRAINT port_bookings_port_key UNIQUE (instance_id, protocol, host_port)
);
CREATE INDEX port_bookings_container ON port_bookings (container_uuid);

-- Zun's container actions (`GET /v1/containers/{id}/container_actions`).
CREATE TABLE container_actions (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id     TEXT    NOT NULL,
    container_uuid TEXT    NOT NULL REFERENCES containers (uuid) ON DELETE CASCADE,
    action         TEXT    NOT NULL,
    project_id     TEXT    NOT NULL,
    user_id        TEXT    NOT NULL,
    start_time     TEXT    NOT NULL,
    finish_time    TEXT,
    message        TEXT,
    CONSTRAINT container_actions_request_key UNIQUE (container_uuid, request_id)
);
