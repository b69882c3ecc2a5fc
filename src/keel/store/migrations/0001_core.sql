-- The durable core: agent definitions by version, sessions, the task tree, the event log,
-- and the latest state snapshot of each session (the log holds the steps after it). Timestamps are microseconds since the Unix epoch.
-- JSON values are stored as text so the same schema serves SQLite and PostgreSQL.

CREATE TABLE agent_versions (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    digest TEXT NOT NULL,
    definition TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (name, version)
);

CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    goal TEXT NOT NULL,
    status TEXT NOT NULL,
    config TEXT,
    budget TEXT,
    agent_versions TEXT NOT NULL,
    final_answer TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE INDEX sessions_by_user ON sessions (user_id, created_at);

CREATE TABLE tasks (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    parent_id TEXT,
    position INTEGER NOT NULL,
    assigned_agent TEXT,
    goal TEXT NOT NULL,
    status TEXT NOT NULL,
    input TEXT NOT NULL,
    output TEXT,
    artifacts TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE INDEX tasks_by_session ON tasks (session_id, position);

CREATE INDEX tasks_by_parent ON tasks (parent_id);

CREATE TABLE events (
    session_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    run_id TEXT NOT NULL,
    task_id TEXT,
    actor TEXT NOT NULL,
    type TEXT NOT NULL,
    payload TEXT NOT NULL,
    ts BIGINT NOT NULL,
    PRIMARY KEY (session_id, seq)
);

CREATE TABLE checkpoints (
    session_id TEXT PRIMARY KEY,
    step BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    state TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
