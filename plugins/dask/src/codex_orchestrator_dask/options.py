"""The ``[command_runner]`` table when ``[plugins] command_runner = "dask"``."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from orchestrator.plugin import CommandRunnerOptions

LOCAL = "local"
ADDRESS = re.compile(r"^[a-z][a-z0-9+.-]*://[^\s/]+$")


class DaskOptions(CommandRunnerOptions):
    scheduler: str = Field(
        LOCAL,
        description='the Dask scheduler, e.g. "tcp://host:8786"; "local" starts a cluster in '
        "this process's machine for trying it out",
    )
    connect_timeout_seconds: float = Field(
        10, gt=0, le=600, description="how long to try reaching the scheduler"
    )
    queue_timeout_seconds: float = Field(
        0,
        ge=0,
        description="fail a stage no worker has taken after this long; 0 = wait for one",
    )
    chunk_bytes: int = Field(
        8192,
        ge=1024,
        le=1024 * 1024,
        description="output travels from the worker in pieces of at most this size",
    )
    local_workers: int = Field(1, ge=1, le=64, description='worker processes of "local"')
    local_threads_per_worker: int = Field(
        4, ge=1, le=256, description='stages one worker of "local" runs at once'
    )
    local_resources: dict[str, float] = Field(
        default_factory=dict,
        description='resources each worker of "local" offers, e.g. { GPU = 1 }',
    )

    @field_validator("scheduler")
    @classmethod
    def _an_address(cls, value: str) -> str:
        value = value.strip()
        if value != LOCAL and not ADDRESS.match(value):
            raise ValueError(
                f"{value!r} is not a scheduler address: use one like "
                '"tcp://host:8786", or "local" for a cluster on this machine'
            )
        return value
