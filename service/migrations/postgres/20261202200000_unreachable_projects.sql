-- The projects whose instances the driver could not list at the last
-- sweep, and why (the gap left by issue #7): the reconciler judges none of
-- their instances meanwhile, the hosts API shows the reason beside each of
-- their instances; `cause` is `delegation_refused` when the cloud refused
-- the authority the project delegated (a revoked trust), which the next
-- call of one of the project's users replaces.
CREATE TABLE unreachable_projects (
    project_id TEXT NOT NULL,
    cause      TEXT NOT NULL,
    reason     TEXT NOT NULL,
    since      TEXT NOT NULL,
    CONSTRAINT unreachable_projects_pkey PRIMARY KEY (project_id)
);
