"""API keys: who may call the service, read from the environment or a file, checked in constant time."""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

KEYS_ENV = "LAPSE_API_KEYS"
KEYS_FILE_ENV = "LAPSE_API_KEYS_FILE"
ADMIN_ENV = "LAPSE_ADMIN_KEY"


def _digest(key: str) -> bytes:
    # Comparing fixed-length digests keeps the comparison's time independent of the key's length.
    return hashlib.sha256(key.encode("utf-8")).digest()


def parse_keys(text: str) -> list[str]:
    """Keys from comma- or newline-separated text; blank entries and `#` comment lines are dropped."""
    keys = []
    for line in text.splitlines():
        if line.strip().startswith("#"):
            continue
        keys.extend(part.strip() for part in line.split(","))
    return [k for k in keys if k]


@dataclass
class KeyRing:
    """The client keys and the admin key the service accepts."""

    env_keys: tuple[str, ...] = ()
    keys_file: Path | None = None
    admin: bytes | None = None
    client: tuple[bytes, ...] = field(default=(), init=False)
    _file_mtime: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self._load()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "KeyRing":
        """Keys from LAPSE_API_KEYS and the file named by LAPSE_API_KEYS_FILE, admin key from LAPSE_ADMIN_KEY."""
        env = os.environ if environ is None else environ
        file_name = env.get(KEYS_FILE_ENV, "").strip()
        admin = env.get(ADMIN_ENV, "").strip()
        return cls(
            env_keys=tuple(parse_keys(env.get(KEYS_ENV, ""))),
            keys_file=Path(file_name) if file_name else None,
            admin=_digest(admin) if admin else None,
        )

    def _load(self) -> None:
        keys = list(self.env_keys)
        self._file_mtime = None
        if self.keys_file is not None:
            try:
                self._file_mtime = self.keys_file.stat().st_mtime
                keys += parse_keys(self.keys_file.read_text())
            except OSError:
                self._file_mtime = None
        self.client = tuple(_digest(k) for k in keys)

    def refresh(self) -> None:
        """Re-read the keys file if it changed, so keys can be rotated without a restart."""
        if self.keys_file is None:
            return
        try:
            mtime = self.keys_file.stat().st_mtime
        except OSError:
            mtime = None
        if mtime != self._file_mtime:
            self._load()

    @property
    def configured(self) -> bool:
        """Whether at least one client key exists (without any, every call is refused)."""
        return bool(self.client)

    def is_client(self, key: str | None) -> bool:
        """Whether `key` is one of the client keys."""
        if not key:
            return False
        candidate = _digest(key)
        # Compare against every key so the time taken does not say which one matched.
        found = False
        for known in self.client:
            found |= hmac.compare_digest(candidate, known)
        return found

    def is_admin(self, key: str | None) -> bool:
        """Whether `key` is the admin key."""
        if not key or self.admin is None:
            return False
        return hmac.compare_digest(_digest(key), self.admin)


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
