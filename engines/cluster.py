"""A Dask client: connected to a running scheduler, or to a local cluster started and closed here."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from config import ScaleOutConfig


@contextmanager
def dask_client(scheduler: str | None = None, workers: int | None = None,
                config: ScaleOutConfig = ScaleOutConfig()) -> Iterator:
    """A distributed Client for `scheduler`, or for a LocalCluster of `workers` single-thread processes."""
    # dask and distributed are an optional extra (lapse[dask]): imported only when the Dask engine runs.
    import dask
    from distributed import Client, LocalCluster

    with dask.config.set({"dataframe.shuffle.method": config.shuffle_method}):
        if scheduler:
            client = Client(scheduler)
            try:
                yield client
            finally:
                client.close()
            return
        n = workers or config.workers
        if n < 1:
            raise ValueError("a local Dask cluster needs at least 1 worker")
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                               memory_limit=config.memory_limit)
        client = Client(cluster)
        try:
            yield client
        finally:
            client.close()
            cluster.close()
