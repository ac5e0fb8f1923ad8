"""The data files the token-classification task reads itself (``Task.read_file``):

- CoNLL columns (``.conll``, ``.iob``, ``.iob2``, ``.bio``): one word a line, its tag in the
  last column (``word tag``, or CoNLL-2003's ``word POS chunk tag``), a blank line between
  sentences, ``-DOCSTART-`` lines skipped;
- JSONL of pre-split tokens, ``{"tokens": [...], "tags": [...]}`` (the tokens joined by
  single spaces become ``text``);
- JSONL of character spans, ``{"text": "...", "entities": [{"start", "end", "label"}]}``
  (converted to IOB2 tags over the whitespace words).

A JSONL file is claimed only when its first line has one of these two shapes; anything else
(``{"text", "tags"}`` lines included) is left to zoo's own JSONL reader. Problems in one
example (a span off word boundaries, a token with a space inside) are kept with it, so the
task's ``check_target`` reports them with the line and ``--on-bad-data skip`` can drop it;
a line that is not a JSON object fails the file.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from zoo.plugin import DataError, Example, word_spans
from zoo_text_ner.iob import spans_to_tags

__all__ = ["CONLL_SUFFIXES", "read_conll", "jsonl_kind", "read_jsonl", "read_path"]

CONLL_SUFFIXES = (".conll", ".iob", ".iob2", ".bio")
JSONL_SUFFIXES = (".jsonl", ".ndjson")
DOCSTART = "-DOCSTART-"


def read_conll(path: Path) -> list[Example]:
    """One example per sentence: ``{"text": words joined by spaces}``, ``{"tags": [...]}``,
    its line the sentence's first."""
    examples: list[Example] = []
    words: list[str] = []
    tags: list[str] = []
    first = 0
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    for n, line in enumerate([*lines, ""], 1):
        cells = line.split()
        if cells and cells[0] != DOCSTART:
            if len(cells) < 2:
                raise DataError(f"{path}:{n}: expected 'word ... tag' columns, got "
                                f"{line.strip()[:60]!r}")
            first = first or n
            words.append(cells[0])
            tags.append(cells[-1])
            continue
        if words:  # a blank line, or a -DOCSTART- line right after a sentence, ends it
            examples.append(Example(first, {"text": " ".join(words)}, {"tags": tags},
                                    {"tokens": words, "tags": tags}, path.parent))
        words, tags, first = [], [], 0
    return examples


def _first_object(path: Path) -> Any:
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.strip():
                try:
                    return json.loads(line)
                except ValueError:
                    return None
    return None


def jsonl_kind(path: Path) -> str | None:
    """``"tokens"`` or ``"entities"`` when the file's first line has that shape, else None."""
    obj = _first_object(path)
    if not isinstance(obj, dict):
        return None
    if isinstance(obj.get("tokens"), list) and "tags" in obj and "text" not in obj:
        return "tokens"
    ents = obj.get("entities")
    if isinstance(obj.get("text"), str) and isinstance(ents, list) and "tags" not in obj \
            and all(isinstance(e, dict) and {"start", "end", "label"} <= set(e) for e in ents):
        return "entities"
    return None


def _tokens_row(obj: dict[str, Any], where: str) -> tuple[dict, dict]:
    tokens = obj["tokens"]
    if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
        raise DataError(f"{where}: 'tokens' must be a list of strings")
    targets = {k: v for k, v in obj.items() if k != "tokens"}
    if any(not t or any(c.isspace() for c in t) for t in tokens):
        targets["tokens"] = tokens  # check_target names the token that cannot be a word
    return {"text": " ".join(tokens)}, targets


def _text_row(obj: dict[str, Any], where: str) -> tuple[dict, dict]:
    text = obj.get("text")
    if not isinstance(text, str):
        raise DataError(f"{where}: expected 'text' (a string) or 'tokens' (a list of words)")
    targets = {k: v for k, v in obj.items() if k != "text"}
    if "entities" in targets and "tags" not in targets:
        try:
            targets["tags"] = spans_to_tags(text, targets["entities"], word_spans(text))
            del targets["entities"]
        except ValueError:
            pass  # kept as spans: check_target reports the problem on this line
    return {"text": text}, targets


def read_jsonl(path: Path) -> list[Example]:
    examples = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{n}"
            try:
                obj = json.loads(line)
            except ValueError as e:
                raise DataError(f"{where}: not valid JSON ({e.msg}); fix or remove the "
                                f"line") from None
            if not isinstance(obj, dict):
                raise DataError(f"{where}: expected a JSON object, got {type(obj).__name__}")
            read = _tokens_row if "tokens" in obj and "text" not in obj else _text_row
            inputs, targets = read(obj, where)
            examples.append(Example(n, inputs, targets, obj, path.parent))
    return examples


def read_path(path: Path) -> list[Example] | None:
    """The examples of a file this task reads, or None when it is not one."""
    suffix = path.suffix.lower()
    if suffix in CONLL_SUFFIXES:
        return read_conll(path)
    if suffix in JSONL_SUFFIXES and path.is_file() and jsonl_kind(path) is not None:
        return read_jsonl(path)
    return None
