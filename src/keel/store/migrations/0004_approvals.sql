-- Human approvals: a tool call the guardrails asked about, or a call with side effects that
-- a crash interrupted. A person answers; no answer by the deadline is a deny. The session
-- records when it took the answer in (applied_at), so nothing is applied twice.

CREATE TABLE approvals (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    agent TEXT NOT NULL,
    call_id TEXT NOT NULL,
    tool TEXT NOT NULL,
    arguments TEXT NOT NULL,
    kind TEXT NOT NULL,
    risk INTEGER NOT NULL,
    reasons TEXT NOT NULL,
    requested_at BIGINT NOT NULL,
    deadline BIGINT NOT NULL,
    status TEXT NOT NULL,
    answered_by TEXT,
    answered_at BIGINT,
    remember INTEGER NOT NULL DEFAULT 0,
    note TEXT,
    applied_at BIGINT
);

CREATE INDEX approvals_by_session ON approvals (session_id, status);
