"""Feedback rows from serving, kept in SQLite (WAL; one connection per thread; ids from
SQLite; posts made idempotent by a client's key), read back by ``zoo data from-feedback``."""
from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

__all__ = ["FeedbackStore", "FeedbackFull", "KeyReused"]


class FeedbackFull(Exception):
    """The store holds its quota of rows or bytes (a 507 names the setting)."""


class KeyReused(Exception):
    """An Idempotency-Key sent again with another body (a 409)."""


class FeedbackStore:
    """SQLite (WAL) table of feedback rows; one connection per thread, ids from SQLite."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._local = threading.local()
        con = self._con()
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("""CREATE TABLE IF NOT EXISTS feedback (
            id INTEGER PRIMARY KEY AUTOINCREMENT, created REAL NOT NULL,
            input TEXT NOT NULL, prediction TEXT, correction TEXT NOT NULL)""")
        cols = [r[1] for r in con.execute("PRAGMA table_info(feedback)")]
        if "idempotency_key" not in cols:  # databases from before idempotent posts
            con.execute("ALTER TABLE feedback ADD COLUMN idempotency_key TEXT")
        if "targets" not in cols:  # databases from before corrections were read as targets
            con.execute("ALTER TABLE feedback ADD COLUMN targets TEXT")
        if "body_sha256" not in cols:  # what an idempotent post sent (a reuse must match)
            con.execute("ALTER TABLE feedback ADD COLUMN body_sha256 TEXT")
        con.execute("CREATE UNIQUE INDEX IF NOT EXISTS feedback_idem ON "
                    "feedback(idempotency_key) WHERE idempotency_key IS NOT NULL")
        con.commit()

    def _con(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
            con.execute("PRAGMA busy_timeout=30000")
            self._local.con = con
        return con

    def add(self, input: Any, prediction: Any, correction: Any,
            idempotency_key: str | None = None, targets: Any = None, *,
            max_rows: float = float("inf"), max_bytes: float = float("inf")) -> int:
        """The new row's id; a post retried with the same ``idempotency_key`` (scope it
        per client: ``client:key``) and the same body is stored once and answered with the
        first one's id, one with another body raises :class:`KeyReused`. ``correction``
        as the client sent it, ``targets`` as the model's task read it. Past ``max_rows``
        rows or ``max_bytes`` on disk, :class:`FeedbackFull`."""
        import hashlib
        import os

        values = [json.dumps(input), json.dumps(prediction), json.dumps(correction)]
        digest = hashlib.sha256("\0".join(values).encode()).hexdigest()
        con = self._con()
        if idempotency_key is not None:
            row = con.execute("SELECT id, body_sha256 FROM feedback WHERE idempotency_key = ?",
                              (idempotency_key,)).fetchone()
            if row is not None:
                return self._same(row, digest)
        on_disk = sum(os.path.getsize(p) for p in (self.path, self.path + "-wal")
                      if os.path.exists(p))
        if on_disk + sum(map(len, values)) > max_bytes:
            raise FeedbackFull(f"the feedback store is full ({on_disk / 1e6:.0f} MB; "
                               f"ZOO_SERVE_FEEDBACK_MAX_BYTES)")
        if con.execute("SELECT count(*) FROM feedback").fetchone()[0] >= max_rows:
            raise FeedbackFull(f"the feedback store holds its {max_rows:g} rows "
                               f"(ZOO_SERVE_FEEDBACK_MAX_ROWS); export them with zoo data "
                               f"from-feedback and start a new one")
        try:
            cur = con.execute(
                "INSERT INTO feedback (created, input, prediction, correction, "
                "idempotency_key, targets, body_sha256) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (time.time(), *values, idempotency_key,
                 json.dumps(targets) if targets is not None else None, digest))
            con.commit()
            return int(cur.lastrowid)
        except sqlite3.IntegrityError:  # the same key posted twice at once
            con.rollback()
            row = con.execute("SELECT id, body_sha256 FROM feedback WHERE idempotency_key = ?",
                              (idempotency_key,)).fetchone()
            return self._same(row, digest)

    @staticmethod
    def _same(row: Any, digest: str) -> int:
        if row[1] is not None and row[1] != digest:
            raise KeyReused("this Idempotency-Key was used for another body; use a new key "
                            "for a new correction")
        return int(row[0])

    def rows(self) -> list[dict[str, Any]]:
        cur = self._con().execute("SELECT id, created, input, prediction, correction, targets "
                                  "FROM feedback ORDER BY id")
        return [{"id": r[0], "created": r[1], "input": json.loads(r[2]),
                 "prediction": json.loads(r[3]) if r[3] else None,
                 "correction": json.loads(r[4]),
                 "targets": json.loads(r[5]) if r[5] else None} for r in cur]
