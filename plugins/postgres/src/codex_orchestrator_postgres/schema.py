"""The database layout, as numbered migrations the plugin applies itself.

``<schema>.schema_versions`` holds one row per applied migration. A process that finds the
newest version applied does nothing more than one query; one that finds it behind takes a
transaction-level advisory lock (so concurrent first starts never race), applies what is
missing in one transaction, and records it. A database whose version is newer than this
plugin's is refused, never changed.
"""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    # 1: every run record of docs/resilience.md, in tables
    """
    CREATE TABLE runs (
        task_id         text NOT NULL,
        run_id          text NOT NULL,
        created_at      timestamptz NOT NULL DEFAULT now(),
        pipeline_id     text,
        status          text,
        started_at      text,
        completed_at    text,
        updated_at      text,
        heartbeat_at    text,
        host            text,
        manifest        text,       -- the manifest JSON exactly as the kernel serialized it
        PRIMARY KEY (task_id, run_id)
    );
    CREATE INDEX runs_by_run_id ON runs (run_id);
    CREATE TABLE stages (
        task_id         text NOT NULL,
        run_id          text NOT NULL,
        stage_index     integer NOT NULL,
        stage_id        text NOT NULL,
        kind            text,
        status          text,
        exit_code       integer,
        started_at      text,
        completed_at    text,
        duration_ms     double precision,
        summary         text,
        PRIMARY KEY (task_id, run_id, stage_index)
    );
    CREATE TABLE error_files (
        task_id         text NOT NULL,
        run_id          text NOT NULL,
        name            text NOT NULL,
        document        text NOT NULL,
        PRIMARY KEY (task_id, run_id, name)
    );
    CREATE TABLE history (
        task_id         text NOT NULL,
        run_id          text NOT NULL,
        started_at      text,
        entry           text NOT NULL,
        PRIMARY KEY (task_id, run_id)
    );
    CREATE TABLE metrics (
        sequence        bigserial PRIMARY KEY,
        task_id         text NOT NULL,
        run_id          text,
        line            text NOT NULL
    );
    CREATE INDEX metrics_by_task ON metrics (task_id, sequence);
    CREATE TABLE heartbeats (
        task_id         text NOT NULL,
        run_id          text NOT NULL,
        beat_at         timestamptz NOT NULL,
        host            text,
        PRIMARY KEY (task_id, run_id)
    );
    CREATE TABLE logs (
        task_id         text NOT NULL,
        run_id          text NOT NULL,
        name            text NOT NULL,   -- runner.ndjson, commands/NN-<stage>.ndjson
        sequence        integer NOT NULL,
        data            bytea NOT NULL,  -- whole NDJSON lines, in order
        PRIMARY KEY (task_id, run_id, name, sequence)
    );
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)

VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_versions (
    version     integer PRIMARY KEY,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""
