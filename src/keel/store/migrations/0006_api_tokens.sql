-- API tokens of the session API. Only a hash of each token is kept; the token itself is
-- shown once, when it is created. A token acts for one user; an admin token may also change
-- the agent registry and the policy.

CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL,
    admin INTEGER NOT NULL DEFAULT 0,
    name TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
