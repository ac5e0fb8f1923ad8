"""What a zoo server counts: metrics in the Prometheus text format, labels from a fixed set
so no request can add one (feedback rows are kept by :mod:`zoo.io.feedback`)."""
from __future__ import annotations

import threading
from collections import defaultdict
from typing import Any

__all__ = ["Metrics", "ROUTES"]

_LAT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: the only path label values: anything else is counted as "other"
ROUTES = ("/predict", "/explain", "/feedback", "/health", "/info", "/metrics", "/docs",
          "/openapi.json")


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
