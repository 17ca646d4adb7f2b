-- The control plane's first schema. One file for SQLite and Postgres: only
-- types both read the same way. Ids are text made by the store, times are
-- unix milliseconds (UTC) in BIGINT, so ordering and "due" comparisons are
-- the same on both engines; JSON is TEXT. Secrets are never columns: a
-- server names the 0600 files that hold them (see doc.go).

-- +goose Up
CREATE TABLE servers (
    id                    TEXT PRIMARY KEY,
    name                  TEXT NOT NULL UNIQUE,
    address               TEXT NOT NULL,
    port                  INTEGER NOT NULL,
    ssh_user              TEXT NOT NULL,
    ssh_key_path          TEXT NOT NULL DEFAULT '',
    host_key              TEXT NOT NULL DEFAULT '',
    agent_token_path      TEXT NOT NULL DEFAULT '',
    metrics_password_path TEXT NOT NULL DEFAULT '',
    status                TEXT NOT NULL,
    status_reason         TEXT NOT NULL DEFAULT '',
    specs                 TEXT NOT NULL DEFAULT '{}',
    provision_run         INTEGER NOT NULL DEFAULT 0,
    created_at            BIGINT NOT NULL,
    updated_at            BIGINT NOT NULL
);

CREATE TABLE provision_steps (
    server_id   TEXT NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    run         INTEGER NOT NULL,
    position    INTEGER NOT NULL,
    name        TEXT NOT NULL,
    status      TEXT NOT NULL,
    command     TEXT NOT NULL DEFAULT '',
    output_tail TEXT NOT NULL DEFAULT '',
    exit_status INTEGER,
    duration_ms BIGINT NOT NULL DEFAULT 0,
    changed     BOOLEAN NOT NULL DEFAULT FALSE,
    started_at  BIGINT,
    ended_at    BIGINT,
    PRIMARY KEY (server_id, run, name),
    UNIQUE (server_id, run, position)
);

CREATE TABLE benches (
    id         TEXT PRIMARY KEY,
    server_id  TEXT NOT NULL REFERENCES servers (id),
    name       TEXT NOT NULL,
    image      TEXT NOT NULL,
    status     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (server_id, name)
);

CREATE TABLE sites (
    id             TEXT PRIMARY KEY,
    server_id      TEXT NOT NULL REFERENCES servers (id),
    bench_id       TEXT NOT NULL REFERENCES benches (id),
    name           TEXT NOT NULL,
    status         TEXT NOT NULL,
    last_backup    TEXT NOT NULL DEFAULT '',
    last_backup_at BIGINT,
    last_restore   TEXT NOT NULL DEFAULT '',
    last_restore_at BIGINT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    UNIQUE (server_id, name)
);
CREATE INDEX sites_by_name ON sites (name, server_id);
CREATE INDEX sites_by_bench ON sites (bench_id);

CREATE TABLE jobs (
    id              TEXT PRIMARY KEY,
    server_id       TEXT NOT NULL REFERENCES servers (id),
    type            TEXT NOT NULL,
    bench           TEXT NOT NULL DEFAULT '',
    site            TEXT NOT NULL DEFAULT '',
    request         TEXT NOT NULL DEFAULT '',
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    deadline_at     BIGINT,
    agent_job       TEXT NOT NULL DEFAULT '',
    error           TEXT NOT NULL DEFAULT '',
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX jobs_due ON jobs (status, next_attempt_at);
CREATE INDEX jobs_by_created ON jobs (created_at, id);
CREATE INDEX jobs_by_server ON jobs (server_id, status);

CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    token_hash   TEXT NOT NULL UNIQUE,
    scope        TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);

-- +goose Down
DROP TABLE api_tokens;
DROP TABLE jobs;
DROP TABLE sites;
DROP TABLE benches;
DROP TABLE provision_steps;
DROP TABLE servers;
