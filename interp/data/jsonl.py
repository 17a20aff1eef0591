"""Reading JSONL files: one JSON object per line, blank lines skipped, errors that name file and line.

Every loader of the package (math problems, training pairs, faithfulness triples, SEAL responses)
reads its rows here, so a broken file says the same thing whichever loader meets it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["read_jsonl", "read_numbered_jsonl"]


def read_numbered_jsonl(path: str | os.PathLike) -> list[tuple[int, dict[str, Any]]]:
    """(line number, row) for each non-blank line, numbered from 1 as an editor shows them.

    Loaders that name rows after their line (ids such as "file/7", errors such as "file:7: ...")
    use the numbers; a line that is not UTF-8, not JSON or not a JSON object is a ValueError
    naming the file and line.
    """
    path = Path(path)
    rows = []
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            where = f"{path}:{lineno}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise ValueError(
                    f"{where}: not UTF-8 text (byte {error.start}: {raw[error.start : error.start + 1]!r}); "
                    f"save the file as UTF-8"
                ) from error
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{where}: invalid JSON ({error.msg})") from error
            if not isinstance(row, dict):
                raise ValueError(f"{where}: expected a JSON object, got {type(row).__name__}")
            rows.append((lineno, row))
    return rows


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of a JSONL file (one JSON object per non-blank line); errors name file and line."""
    return [row for _, row in read_numbered_jsonl(path)]
