"""The database layout. ``PRAGMA user_version`` holds :data:`SCHEMA_VERSION`."""

from __future__ import annotations

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    task_id         TEXT NOT NULL,
    run_id          TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    pipeline_id     TEXT,
    status          TEXT,
    started_at      TEXT,
    completed_at    TEXT,
    updated_at      TEXT,
    heartbeat_at    TEXT,
    manifest        TEXT,             -- the manifest JSON, exactly as the kernel serialized it
    PRIMARY KEY (task_id, run_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS runs_by_run_id ON runs (run_id);

CREATE TABLE IF NOT EXISTS stages (
    task_id         TEXT NOT NULL,
    run_id          TEXT NOT NULL,
    stage_index     INTEGER NOT NULL,
    stage_id        TEXT NOT NULL,
    kind            TEXT,
    status          TEXT,
    exit_code       INTEGER,
    started_at      TEXT,
    completed_at    TEXT,
    duration_ms     INTEGER,
    summary         TEXT,
    PRIMARY KEY (task_id, run_id, stage_index)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS error_files (
    task_id         TEXT NOT NULL,
    run_id          TEXT NOT NULL,
    name            TEXT NOT NULL,
    document        TEXT NOT NULL,
    PRIMARY KEY (task_id, run_id, name)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS history (    -- the task's state snapshot, one row per run
    task_id         TEXT NOT NULL,
    run_id          TEXT NOT NULL,
    started_at      TEXT,
    entry           TEXT NOT NULL,
    PRIMARY KEY (task_id, run_id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS metrics (
    sequence        INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id         TEXT NOT NULL,
    run_id          TEXT,
    line            TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS metrics_by_task ON metrics (task_id, sequence);
"""
