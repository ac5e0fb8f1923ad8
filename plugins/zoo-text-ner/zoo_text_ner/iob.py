"""IOB2 tags, entity spans and the words of a text, in plain Python (no torch): shared by the
readers, the task and the head.

A word is a maximal run of non-space characters (``zoo.plugin.word_spans``), so pre-split
tokens joined by single spaces give the same words back. Tags are IOB2: ``O`` outside any
entity, ``B-TYPE`` on an entity's first word, ``I-TYPE`` on the words after it. An entity as
a span is ``{"start", "end", "label"}`` in characters of the text (``end`` exclusive, as
Python slices), starting and ending on word boundaries.

The checking functions return a message (without the ``where`` prefix the caller adds) or
raise :class:`ValueError` with one; callers turn it into a ``DataError``.
"""
from __future__ import annotations

from typing import Any, Sequence

__all__ = ["OUTSIDE", "DEFAULT_LABELS", "split_tag", "tag_problem", "chunks", "repair",
           "spans_to_tags", "entities_from_tags", "label_set", "entity_types"]

OUTSIDE = "O"
#: CoNLL-2003's entity types, in its order: the labels of a head before it sees data
DEFAULT_LABELS = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC",
                  "I-MISC")
_OTHER_SCHEMES = {"E": "BIOES", "S": "BIOES", "L": "BILOU", "U": "BILOU"}


def split_tag(tag: Any) -> tuple[str, str | None]:
    """``"B-PER"`` -> ``("B", "PER")``, ``"O"`` -> ``("O", None)``; ValueError otherwise."""
    if tag == OUTSIDE:
        return OUTSIDE, None
    if isinstance(tag, str) and len(tag) > 2 and tag[1] == "-" and tag[0] in "BI" \
            and not any(c.isspace() for c in tag):
        return tag[0], tag[2:]
    raise ValueError(tag)


def _word(words: Sequence[str] | None, i: int) -> str:
    return f" (word {words[i]!r})" if words is not None and i < len(words) else ""


def tag_problem(tags: Any, words: Sequence[str] | None = None) -> str | None:
    """Why ``tags`` is not a well-formed IOB2 sequence, or None. ``words``: the words, to
    name the one at fault."""
    if not isinstance(tags, list) or not tags:
        return "'tags' must be a non-empty list of IOB2 tags, one per word"
    inside = None  # the type of the entity the previous word is in
    for i, tag in enumerate(tags):
        if not isinstance(tag, str):
            return f"tag {i + 1} is a {type(tag).__name__}, not a string"
        try:
            prefix, kind = split_tag(tag)
        except ValueError:
            scheme = _OTHER_SCHEMES.get(tag[:1]) if tag[1:2] == "-" else None
            why = f" is {scheme}, not IOB2; convert the data to IOB2" if scheme else \
                " is not IOB2"
            return f"tag {i + 1} {tag!r}{_word(words, i)}{why} ('O', 'B-TYPE' or 'I-TYPE')"
        if prefix == "I" and inside != kind:
            where = f"after {tags[i - 1]!r}" if i else "first"
            return (f"tag {i + 1} {tag!r}{_word(words, i)} comes {where}: IOB2 starts an "
                    f"entity with 'B-{kind}' (IOB1 data: convert it to IOB2)")
        inside = kind
    return None


def chunks(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """The entities of a tag sequence as ``(type, first word, last word)``. Lenient, as
    conlleval and seqeval's default mode: an ``I-X`` that continues no ``X`` starts one;
    a tag that is not IOB2 counts as ``O``."""
    out: list[tuple[str, int, int]] = []
    for i, tag in enumerate(tags):
        try:
            prefix, kind = split_tag(tag)
        except ValueError:
            prefix, kind = OUTSIDE, None
        if prefix == "I" and out and out[-1][0] == kind and out[-1][2] == i - 1:
            out[-1] = (kind, out[-1][1], i)
        elif kind is not None:
            out.append((kind, i, i))
    return out


def repair(tags: Sequence[str]) -> list[str]:
    """Well-formed IOB2 with the same entities as :func:`chunks` reads: an ``I-X`` that
    continues no ``X`` becomes ``B-X``."""
    out = [OUTSIDE] * len(tags)
    for kind, first, last in chunks(tags):
        out[first] = f"B-{kind}"
        for i in range(first + 1, last + 1):
            out[i] = f"I-{kind}"
    return out


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _entity_problem(ent: Any, n: int, text: str) -> str | None:
    if not isinstance(ent, dict):
        return f"entity {n} must be an object {{\"start\", \"end\", \"label\"}}"
    start, end, label = ent.get("start"), ent.get("end"), ent.get("label")
    if not (_int(start) and _int(end)):
        return f"entity {n} needs whole-number character offsets 'start' and 'end'"
    if not isinstance(label, str) or not label.strip() or any(c.isspace() for c in label):
        return f"entity {n} needs a 'label' (a type such as 'PER', no spaces)"
    if label[1:2] == "-" and label[:1] in "BI":
        return f"entity {n} label {label!r} is a tag; give the type alone ({label[2:]!r})"
    if not 0 <= start < end <= len(text):
        return (f"entity {n} [{start}:{end}] is outside the text ({len(text)} characters; "
                f"0 <= start < end <= length)")
    if "text" in ent and ent["text"] != text[start:end]:
        return (f"entity {n} says its text is {str(ent['text'])[:40]!r} but "
                f"text[{start}:{end}] is {text[start:end][:40]!r}")
    return None


def spans_to_tags(text: str, entities: Any, spans: Sequence[tuple[int, int]]) -> list[str]:
    """Character spans -> one IOB2 tag per word. ``spans``: the words' (start, end).
    ValueError when a span does not start and end on word boundaries, or spans overlap."""
    if not isinstance(entities, list):
        raise ValueError("'entities' must be a list of {\"start\", \"end\", \"label\"}")
    starts = {s: i for i, (s, _) in enumerate(spans)}
    ends = {e: i for i, (_, e) in enumerate(spans)}
    tags = [OUTSIDE] * len(spans)
    for n, ent in enumerate(entities, 1):
        problem = _entity_problem(ent, n, text)
        if problem:
            raise ValueError(problem)
        start, end, label = ent["start"], ent["end"], ent["label"]
        if start not in starts or end not in ends:
            inside = [text[s:e] for s, e in spans if s < end and e > start]
            raise ValueError(f"entity {n} [{start}:{end}] {text[start:end][:40]!r} does not "
                             f"fall on word boundaries (the words there: "
                             f"{' '.join(inside)[:60]!r}); spans cover whole "
                             f"whitespace-separated words")
        first, last = starts[start], ends[end]
        taken = next((i for i in range(first, last + 1) if tags[i] != OUTSIDE), None)
        if taken is not None:
            raise ValueError(f"entity {n} [{start}:{end}] overlaps another entity at word "
                             f"{taken + 1} {text[spans[taken][0]:spans[taken][1]]!r}; "
                             f"IOB2 gives each word one entity")
        tags[first] = f"B-{label}"
        for i in range(first + 1, last + 1):
            tags[i] = f"I-{label}"
    return tags


def entities_from_tags(text: str, spans: Sequence[tuple[int, int]], tags: Sequence[str],
                       scores: Sequence[float] | None = None) -> list[dict[str, Any]]:
    """The entities of ``tags`` as ``{"text", "label", "start", "end", "score"}`` with
    character offsets into ``text``; an entity's score is the mean of its words' scores."""
    out = []
    for kind, first, last in chunks(tags):
        start, end = spans[first][0], spans[last][1]
        words = scores[first:last + 1] if scores is not None else []
        out.append({"text": text[start:end], "label": kind, "start": start, "end": end,
                    "score": float(sum(words) / len(words)) if words else 1.0})
    return out


def entity_types(labels: Sequence[str]) -> list[str]:
    """The entity types of a label list, in their order of appearance."""
    seen: dict[str, None] = {}
    for tag in labels:
        try:
            kind = split_tag(tag)[1]
        except ValueError:
            continue
        if kind is not None:
            seen.setdefault(kind, None)
    return list(seen)


def label_set(tags: Sequence[str]) -> list[str]:
    """A head's labels for these tags: ``O``, then ``B-X``, ``I-X`` for each type, types
    sorted (both prefixes even when the data has only one: the head can predict either)."""
    kinds = sorted(set(entity_types(tags)))
    return [OUTSIDE] + [f"{p}-{k}" for k in kinds for p in ("B", "I")]
