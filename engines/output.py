"""Writing a Dask frame as a Parquet dataset folder that appears whole or not at all."""

from __future__ import annotations

import json
from pathlib import Path

from features.atomic import atomic_path

# Where pandas keeps a frame's `attrs` in a Parquet file's metadata (and restores them from, on reading).
_ATTRS_KEY = b"PANDAS_ATTRS"


def write_dataset(frame, target: str | Path, attrs: dict | None = None) -> Path:
    """Write a Dask frame to the Parquet folder `target` via a sibling temporary folder, then rename it in place.

    Parts have fixed names (part.N.parquet), so a task Dask recomputes after losing a worker
    overwrites its own part instead of adding one. `attrs` (JSON values) go into every part's metadata, where
    pandas reads a frame's `attrs` from, so `pd.read_parquet(target).attrs` is `attrs`.
    """
    target = Path(target)
    metadata = {_ATTRS_KEY: json.dumps(attrs).encode()} if attrs is not None else None
    with atomic_path(target, folder=True) as tmp:
        frame.to_parquet(str(tmp), write_index=False, overwrite=False, custom_metadata=metadata)
    return target
