-- The blackboard: facts and decisions by (scope, key) with every version kept, and the
-- metadata of content-addressed artifacts with the tasks they belong to.
-- A scope is concrete: 'session:<id>', 'project:<id>' or 'global'. Decisions are facts of
-- kind 'decision' whose value is the structured decision. Timestamps are microseconds
-- since the Unix epoch; JSON values are text, as in 0001.

CREATE TABLE facts (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    version BIGINT NOT NULL,
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    session_id TEXT NOT NULL,
    task_id TEXT,
    agent TEXT NOT NULL,
    event_id TEXT NOT NULL,
    written_at BIGINT NOT NULL,
    expires_at BIGINT,
    PRIMARY KEY (scope, key)
);

CREATE INDEX facts_by_expiry ON facts (expires_at);

-- Every value ever written, the current one included; a sweep of expired facts leaves it.
CREATE TABLE fact_history (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    version BIGINT NOT NULL,
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    session_id TEXT NOT NULL,
    task_id TEXT,
    agent TEXT NOT NULL,
    event_id TEXT NOT NULL,
    written_at BIGINT NOT NULL,
    expires_at BIGINT,
    PRIMARY KEY (scope, key, version)
);

CREATE TABLE artifacts (
    id TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL,
    name TEXT NOT NULL,
    type TEXT NOT NULL,
    size BIGINT NOT NULL,
    scope TEXT NOT NULL,
    session_id TEXT NOT NULL,
    task_id TEXT,
    agent TEXT NOT NULL,
    event_id TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE INDEX artifacts_by_session ON artifacts (session_id, created_at);

CREATE INDEX artifacts_by_sha256 ON artifacts (sha256);

CREATE TABLE artifact_links (
    task_id TEXT NOT NULL,
    artifact_id TEXT NOT NULL,
    linked_at BIGINT NOT NULL,
    PRIMARY KEY (task_id, artifact_id)
);
