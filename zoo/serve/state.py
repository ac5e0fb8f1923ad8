"""What a zoo server keeps: feedback rows (SQLite, idempotent posts) and metrics
(Prometheus text, labels from a fixed set so no request can add one)."""
from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

__all__ = ["FeedbackStore", "Metrics", "ROUTES"]

_LAT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: the only path label values: anything else is counted as "other"
ROUTES = ("/predict", "/feedback", "/health", "/info", "/metrics", "/docs", "/openapi.json")


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
            idempotency_key: str | None = None) -> int:
        """The new row's id; a post retried with the same ``idempotency_key`` is stored
        once and answered with the first one's id."""
        con = self._con()
        try:
            cur = con.execute(
                "INSERT INTO feedback (created, input, prediction, correction, "
                "idempotency_key) VALUES (?, ?, ?, ?, ?)",
                (time.time(), json.dumps(input), json.dumps(prediction),
                 json.dumps(correction), idempotency_key))
            con.commit()
            return int(cur.lastrowid)
        except sqlite3.IntegrityError:
            con.rollback()
            row = con.execute("SELECT id FROM feedback WHERE idempotency_key = ?",
                              (idempotency_key,)).fetchone()
            return int(row[0])

    def rows(self) -> list[dict[str, Any]]:
        cur = self._con().execute("SELECT id, created, input, prediction, correction FROM "
                                  "feedback ORDER BY id")
        return [{"id": r[0], "created": r[1], "input": json.loads(r[2]),
                 "prediction": json.loads(r[3]) if r[3] else None,
                 "correction": json.loads(r[4])} for r in cur]


class Metrics:
    """Counters and histograms, rendered in the Prometheus text format."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: dict[tuple[str, int], int] = defaultdict(int)
        self.latency: dict[str, list[int]] = defaultdict(lambda: [0] * (len(_LAT_BUCKETS) + 1))
        self.latency_sum: dict[str, float] = defaultdict(float)
        self.batch_sizes: dict[int, int] = defaultdict(int)

    def observe(self, path: str, status: int, seconds: float) -> None:
        path = path if path in ROUTES else "other"  # bounded, never a client's string
        with self.lock:
            self.requests[(path, status)] += 1
            b = next((k for k, le in enumerate(_LAT_BUCKETS) if seconds <= le), len(_LAT_BUCKETS))
            self.latency[path][b] += 1
            self.latency_sum[path] += seconds

    def batch(self, size: int) -> None:
        with self.lock:
            self.batch_sizes[size] += 1

    def render(self) -> str:
        lines = ["# HELP zoo_requests_total Requests by path and status.",
                 "# TYPE zoo_requests_total counter"]
        with self.lock:
            for (path, status), n in sorted(self.requests.items()):
                lines.append(f'zoo_requests_total{{path="{path}",status="{status}"}} {n}')
            lines += ["# HELP zoo_request_seconds Request latency.",
                      "# TYPE zoo_request_seconds histogram"]
            for path, counts in sorted(self.latency.items()):
                acc = 0
                for le, c in zip([*map(str, _LAT_BUCKETS), "+Inf"], counts):
                    acc += c
                    lines.append(f'zoo_request_seconds_bucket{{path="{path}",le="{le}"}} {acc}')
                lines.append(f'zoo_request_seconds_sum{{path="{path}"}} {self.latency_sum[path]:.6f}')
                lines.append(f'zoo_request_seconds_count{{path="{path}"}} {acc}')
            lines += ["# HELP zoo_batch_size Inputs per model call.",
                      "# TYPE zoo_batch_size histogram"]
            acc = total = 0
            for size in sorted(self.batch_sizes):
                acc += self.batch_sizes[size]
                total += size * self.batch_sizes[size]
                lines.append(f'zoo_batch_size_bucket{{le="{size}"}} {acc}')
            lines.append(f'zoo_batch_size_bucket{{le="+Inf"}} {acc}')
            lines.append(f"zoo_batch_size_sum {total}")
            lines.append(f"zoo_batch_size_count {acc}")
        return "\n".join(lines) + "\n"
