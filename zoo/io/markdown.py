"""User strings in a model card: labels, names, data sets, settings and descriptions come
from training data, configs and command lines, so none may break out of where the card puts
them (a code span, a table cell, a paragraph) into headings, links or raw HTML.

``inline_code(x)`` is an inline code span that holds ``x`` whole (fenced by more backticks than
any run inside, ``|`` escaped for tables); ``plain_text(x)`` is plain text with Markdown and HTML
metacharacters escaped. Both put the value on one line and bound its length."""
from __future__ import annotations

import re
from typing import Any

__all__ = ["inline_code", "plain_text"]

_SPACE = re.compile(r"[\s\x00-\x1f\x7f\u2028\u2029]+")
_MARKDOWN = re.compile(r"([\\`*_\[\]#|~!])")
_LIST_START = re.compile(r"^([-+]|\d+[.)])(?= |$)")


def _line(value: Any, limit: int) -> str:
    s = _SPACE.sub(" ", str(value)).strip()
    return s if len(s) <= limit else s[: limit - 1] + "…"


def inline_code(value: Any, limit: int = 200) -> str:
    """``value`` as one inline code span (literal inside: no Markdown, no HTML)."""
    s = _line(value, limit).replace("|", "\\|")
    runs = [len(r) for r in re.findall(r"`+", s)]
    fence = "`" * (max(runs, default=0) + 1)
    pad = " " if s.startswith("`") or s.endswith("`") or not s else ""
    return f"{fence}{pad}{s}{pad}{fence}"


def plain_text(value: Any, limit: int = 2000) -> str:
    """``value`` as plain text: HTML and Markdown metacharacters escaped, one line."""
    s = _line(value, limit)
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    s = _MARKDOWN.sub(r"\\\1", s)
    return _LIST_START.sub(lambda m: m.group(1)[:-1] + "\\" + m.group(1)[-1], s)
