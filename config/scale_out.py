"""How the Dask engine partitions work and sizes a local cluster: the [scale_out] table."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from config.base import Settings


class ScaleOutConfig(Settings):
    """How the Dask engine partitions work and sizes a local cluster.

    Reasons kept per patient in batch scores are the service's (`ServingConfig.top_reasons`).
    """

    # Local cluster size when no --scheduler address is given (one thread per worker process).
    workers: int = Field(2, ge=1)
    # Target events per partition; patients are hashed into ceil(events / this) buckets.
    events_per_partition: int = Field(2_000_000, ge=1)
    # Memory limit per local worker process (Dask syntax).
    memory_limit: str = "2GiB"
    # "tasks" recomputes lost shuffle pieces when a worker dies; "p2p" restarts the whole shuffle.
    shuffle_method: Literal["tasks", "p2p"] = "tasks"
