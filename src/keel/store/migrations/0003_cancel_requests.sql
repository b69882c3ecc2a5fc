-- Requests to cancel a session or one of its tasks, from any process; the process running
-- the session picks them up, stops the work, and marks them handled.

CREATE TABLE cancel_requests (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    task_id TEXT,
    reason TEXT NOT NULL,
    actor TEXT NOT NULL,
    requested_at BIGINT NOT NULL,
    handled_at BIGINT
);

CREATE INDEX cancel_requests_open ON cancel_requests (session_id, handled_at);
