"""Writing a Dask frame as a Parquet dataset folder that appears whole or not at all."""

from __future__ import annotations

from pathlib import Path

from features.atomic import atomic_path


def write_dataset(frame, target: str | Path) -> Path:
    """Write a Dask frame to the Parquet folder `target` via a sibling temporary folder, then rename it in place.

    Parts have fixed names (part.N.parquet), so a task Dask recomputes after losing a worker
    overwrites its own part instead of adding one.
    """
    target = Path(target)
    with atomic_path(target, folder=True) as tmp:
        frame.to_parquet(str(tmp), write_index=False, overwrite=False)
    return target
