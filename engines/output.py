"""Writing a Dask frame as a Parquet dataset folder that appears whole or not at all."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def write_dataset(frame, target: str | Path) -> Path:
    """Write a Dask frame to the Parquet folder `target` via a sibling temporary folder, then rename it in place.

    Parts have fixed names (part.N.parquet), so a task Dask recomputes after losing a worker
    overwrites its own part instead of adding one.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
    old = None
    try:
        frame.to_parquet(str(tmp), write_index=False, overwrite=False)
        if target.exists():
            old = target.parent / f".{target.name}.old-{os.getpid()}"
            os.replace(target, old)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            if old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
            elif old.exists():
                old.unlink()
    return target
