-- User-defined networks of the Docker endpoint (issue #8). Keep in step
-- with ../sqlite/20261202100000_networks.sql.
--
-- One row per network a project created (`docker network create`,
-- docker-compose's project network). Which containers are on it lives in
-- their specs; the network's containers all run on one instance, found
-- from them, so nothing here names an instance.
CREATE TABLE networks (
    uuid       TEXT COLLATE "C" NOT NULL,
    project_id TEXT COLLATE "C" NOT NULL,
    user_id    TEXT COLLATE "C" NOT NULL,
    name       TEXT COLLATE "C" NOT NULL,
    labels     TEXT             NOT NULL,
    created_at TEXT COLLATE "C" NOT NULL,
    CONSTRAINT networks_pkey PRIMARY KEY (uuid),
    CONSTRAINT networks_project_name_key UNIQUE (project_id, name)
);
