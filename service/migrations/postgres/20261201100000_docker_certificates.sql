-- Client certificates of the Docker endpoint (issue #8). Keep in step with
-- ../sqlite/20261201100000_docker_certificates.sql.
--
-- One row per certificate Nest's CA signed for a user: the serial (hex) is
-- what the endpoint finds in a presented certificate, the row is whom it
-- stands for. `roles` is the JSON array of the issuing token's roles, so
-- policy treats a certificate's calls as that token's. A revoked row
-- stays, to answer "revoked" rather than "unknown".
CREATE TABLE docker_certificates (
    serial     TEXT COLLATE "C" NOT NULL,
    user_id    TEXT COLLATE "C" NOT NULL,
    project_id TEXT COLLATE "C" NOT NULL,
    roles      TEXT             NOT NULL,
    created_at TEXT COLLATE "C" NOT NULL,
    expires_at TEXT COLLATE "C" NOT NULL,
    revoked_at TEXT COLLATE "C",
    CONSTRAINT docker_certificates_pkey PRIMARY KEY (serial)
);
CREATE INDEX docker_certificates_project ON docker_certificates (project_id, created_at);
