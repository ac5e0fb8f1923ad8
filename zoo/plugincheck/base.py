"""What every check shares: its result, running one check so that a failure is a result
(never a crash of the checker), and a skip for what cannot run here."""
from __future__ import annotations

import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

__all__ = ["CheckResult", "Skip", "run_check"]


@dataclass
class CheckResult:
    subject: str  # "encoder my-enc", "plugin my_plugin"
    check: str
    status: str  # "pass" | "fail" | "skip" | "warn" (works, but deprecated)
    detail: str = ""


class Skip(Exception):
    """A check that cannot run here (weights not installed, arguments needed)."""


def run_check(results: list[CheckResult], subject: str, check: str,
              fn: Callable[[], Any]) -> Any:
    """Run one check and record its result; the check's return value (None if it did
    not pass)."""
    try:
        value = fn()
    except Skip as e:
        results.append(CheckResult(subject, check, "skip", str(e)))
        return None
    except Exception as e:  # a failed check is a result, never a crash of the checker
        where = traceback.extract_tb(e.__traceback__)[-1]
        detail = f"{type(e).__name__}: {e} ({Path(where.filename).name}:{where.lineno})"
        results.append(CheckResult(subject, check, "fail", detail[:300]))
        return None
    results.append(CheckResult(subject, check, "pass", value if isinstance(value, str) else ""))
    return value
