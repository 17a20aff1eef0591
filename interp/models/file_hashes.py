"""SHA-256 of model files, computed once per file per process.

The preset cache records the hash of every file it writes and checks it before each use. Hashing
the whole file catches any changed byte (sampling would miss most of them) and costs about 0.4 s
for SmolLM2's 538 MB of weights; remembering the hash while the file's size, modification time
and inode stay the same makes every later check in the same process free.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["file_sha256"]

_KNOWN: dict[Path, tuple[tuple[int, int, int, int], str]] = {}


def file_sha256(path: Path) -> str:
    """The hex SHA-256 of the file at `path`, reusing this process's earlier hash if unchanged."""
    path = Path(path).resolve()
    stat = path.stat()
    key = (stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino)
    known = _KNOWN.get(path)
    if known is not None and known[0] == key:
        return known[1]
    with open(path, "rb") as handle:
        digest = hashlib.file_digest(handle, "sha256").hexdigest()
    _KNOWN[path] = (key, digest)
    return digest
