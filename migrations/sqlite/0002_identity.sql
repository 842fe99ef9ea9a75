-- Identity for SQLite: users with roles, server-side sessions, API tokens, failed sign-ins.
-- Secrets are never stored: passwords as Argon2id PHC strings, session and API tokens as SHA-256.

CREATE TABLE users (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    username       TEXT    NOT NULL CONSTRAINT users_username_key UNIQUE,
    display_name   TEXT    NOT NULL DEFAULT '',
    password_hash  TEXT    NOT NULL,
    roles          TEXT    NOT NULL DEFAULT '[]',
    disabled_at    BIGINT,
    created_at     BIGINT  NOT NULL,
    updated_at     BIGINT  NOT NULL
);

CREATE TABLE sessions (
    token_hash    TEXT   PRIMARY KEY,
    user_id       BIGINT NOT NULL REFERENCES users (id),
    created_at    BIGINT NOT NULL,
    last_seen_at  BIGINT NOT NULL,
    client_addr   TEXT   NOT NULL DEFAULT ''
);
CREATE INDEX sessions_user_idx ON sessions (user_id);

CREATE TABLE api_tokens (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id       BIGINT NOT NULL REFERENCES users (id),
    name          TEXT   NOT NULL,
    token_hash    TEXT   NOT NULL CONSTRAINT api_tokens_hash_key UNIQUE,
    prefix        TEXT   NOT NULL,
    roles         TEXT   NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT,
    revoked_at    BIGINT,
    last_used_at  BIGINT
);
CREATE INDEX api_tokens_user_idx ON api_tokens (user_id);

CREATE TABLE sign_in_failures (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    username     TEXT   NOT NULL,
    client_addr  TEXT   NOT NULL,
    at           BIGINT NOT NULL
);
CREATE INDEX sign_in_failures_username_idx ON sign_in_failures (username, at);
CREATE INDEX sign_in_failures_addr_idx ON sign_in_failures (client_addr, at);
