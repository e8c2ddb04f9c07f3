-- The authority each project delegated to Nest (issue #7): a Keystone
-- trust (its id; the secret is Nest's own password) or an application
-- credential (id and secret), so that the nova driver can boot and delete
-- servers in the project long after the user's token expired.
CREATE TABLE tenant_authorities (
    project_id    TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    kind          TEXT NOT NULL,
    credential_id TEXT NOT NULL,
    secret        TEXT,
    created_at    TEXT NOT NULL,
    CONSTRAINT tenant_authorities_pkey PRIMARY KEY (project_id)
);
