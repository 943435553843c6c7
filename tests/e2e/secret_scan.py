"""Find a secret in files (raw bytes, so binary files such as the SQLite DB count) and in a SQLite DB."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path


def files_under(*roots: Path) -> list[Path]:
    """Every regular file below the roots (recursively)."""
    return sorted(path for root in roots for path in root.rglob("*") if path.is_file())


def files_containing(paths: Iterable[Path], needle: str) -> dict[Path, str]:
    """The files whose bytes contain ``needle``, each with the text around the first hit."""
    raw = needle.encode()
    hits: dict[Path, str] = {}
    for path in paths:
        try:
            data = path.read_bytes()
        except (FileNotFoundError, PermissionError):
            continue
        index = data.find(raw)
        if index >= 0:
            hits[path] = data[max(0, index - 200) : index + len(raw) + 100].decode(errors="replace")
    return hits


def sqlite_cells_containing(db_path: Path, needle: str) -> list[str]:
    """``table.column`` of every cell (text or blob) holding ``needle``, read through SQLite itself.

    A raw byte scan can miss a value split over overflow pages; this cannot.
    """
    hits: list[str] = []
    connection = sqlite3.connect(f"{db_path.as_uri()}?mode=ro", uri=True, timeout=30)
    try:
        tables = [row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            columns = [row[1] for row in connection.execute(f'PRAGMA table_info("{table}")')]
            for column in columns:
                query = (
                    f'SELECT count(*) FROM "{table}" '
                    f'WHERE instr(CAST("{column}" AS BLOB), CAST(? AS BLOB)) > 0'
                )
                (count,) = connection.execute(query, (needle,)).fetchone()
                if count:
                    hits.append(f"{table}.{column} ({count} rows)")
    finally:
        connection.close()
    return hits
