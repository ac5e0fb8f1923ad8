"""Feedback rows from serving, kept in SQLite (WAL; one connection per thread; ids from
SQLite; posts made idempotent by a client's key), read back by ``zoo data from-feedback``."""
from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

__all__ = ["FeedbackStore"]


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
            idempotency_key: str | None = None, targets: Any = None) -> int:
        """The new row's id; a post retried with the same ``idempotency_key`` is stored
        once and answered with the first one's id. ``correction`` as the client sent it,
        ``targets`` as the model's task read it (what training data holds)."""
        con = self._con()
        try:
            cur = con.execute(
                "INSERT INTO feedback (created, input, prediction, correction, "
                "idempotency_key, targets) VALUES (?, ?, ?, ?, ?, ?)",
                (time.time(), json.dumps(input), json.dumps(prediction),
                 json.dumps(correction), idempotency_key,
                 json.dumps(targets) if targets is not None else None))
            con.commit()
            return int(cur.lastrowid)
        except sqlite3.IntegrityError:
            con.rollback()
            row = con.execute("SELECT id FROM feedback WHERE idempotency_key = ?",
                              (idempotency_key,)).fetchone()
            return int(row[0])

    def rows(self) -> list[dict[str, Any]]:
        cur = self._con().execute("SELECT id, created, input, prediction, correction, targets "
                                  "FROM feedback ORDER BY id")
        return [{"id": r[0], "created": r[1], "input": json.loads(r[2]),
                 "prediction": json.loads(r[3]) if r[3] else None,
                 "correction": json.loads(r[4]),
                 "targets": json.loads(r[5]) if r[5] else None} for r in cur]
