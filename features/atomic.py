"""The one atomic writer: a file or a folder is written beside its target, synced, then renamed over it.

Lives in features/ (layer 1), the lowest layer every writer may import: config/ (layer 0) holds
settings only, and features/io.py, reporting/, simulation/ and engines/ all sit at or above layer 1.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _fsync(path: Path) -> None:
    """Flush a file, or a folder entry, to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(path: Path) -> None:
    """Flush a file, or every file and folder under a folder, to disk."""
    if path.is_dir():
        for root, _, files in os.walk(path):
            for name in files:
                _fsync(Path(root) / name)
            _fsync(Path(root))
    else:
        _fsync(path)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


def _sibling(target: Path, kind: str) -> Path:
    # A hidden, unique name in the target's own folder, so the final rename never crosses file systems.
    return target.parent / f".{target.name}.{uuid.uuid4().hex[:12]}.{kind}"


@contextmanager
def atomic_path(target: str | Path, folder: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of `target` to write; on success it replaces `target` whole.

    With `folder=False` the caller creates the file at the yielded path; with `folder=True` the
    yielded folder already exists (empty) and the caller fills it. When the block ends normally the
    new file or folder is fsync'd and renamed onto `target` (an existing folder, or anything a folder
    replaces, is first moved aside, then removed); when it raises, the temporary is removed and whatever `target` held is untouched.
    Files and folders get the ordinary permissions (the process umask), not private ones.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _sibling(target, "tmp")
    if folder:
        tmp.mkdir()
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"{target}: nothing was written")
        _fsync_tree(tmp)
        if target.is_dir() or (folder and (target.exists() or target.is_symlink())):
            # os.replace cannot put a folder over a non-empty one, nor a folder over a file
            # (or a file over a folder): move the old one aside first, and back if the rename fails.
            retired = _sibling(target, "old")
            os.replace(target, retired)
            try:
                os.replace(tmp, target)
            except BaseException:
                os.replace(retired, target)
                raise
            _remove(retired)
        else:
            os.replace(tmp, target)
        _fsync(target.parent)
    finally:
        _remove(tmp)
