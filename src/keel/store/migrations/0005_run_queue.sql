-- Sessions waiting for a worker, and the lease of the worker that runs each. A worker
-- claims due rows (lease expired or never taken), renews its leases while it runs them,
-- and deletes the row when the session ends. A dead worker's rows fall due when their
-- lease ends, and another worker resumes the session from its checkpoint.

CREATE TABLE run_queue (
    session_id TEXT PRIMARY KEY,
    enqueued_at BIGINT NOT NULL,
    worker_id TEXT,
    lease_until BIGINT NOT NULL DEFAULT 0,
    claims INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);

CREATE INDEX run_queue_due ON run_queue (lease_until, enqueued_at);

-- The workers that are (or were) alive, for health checks and `keel workers`.

CREATE TABLE workers (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    capacity INTEGER NOT NULL,
    running INTEGER NOT NULL DEFAULT 0,
    started_at BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL
);
