"""Text corruptions for ``zoo eval --robustness``: keyboard-neighbour typos, adjacent
character swaps, case changes and whitespace damage, at three severities.

Counts, not coin flips: a severity changes a fixed share of the eligible places (letters for
typos, words for the others), at least one, chosen with the generator it is given. So each
corruption changes any text that has such a place, the same seed gives the same text, and a
higher severity changes more of it."""
from __future__ import annotations

import re
from typing import Any, Callable

__all__ = ["text_corruptions", "typos", "swaps", "case", "whitespace"]

#: share of the letters a typo replaces, at severity 1, 2, 3
CHAR_RATE = (0.03, 0.08, 0.15)
#: share of the words swaps, case and whitespace change, at severity 1, 2, 3
WORD_RATE = (0.1, 0.25, 0.5)

_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")  # each row sits half a key right of the last


def _keyboard() -> dict[str, str]:
    """Each letter -> the letters around it on a QWERTY keyboard."""
    near: dict[str, str] = {}
    for r, row in enumerate(_ROWS):
        for c, ch in enumerate(row):
            keys = [(r, c - 1), (r, c + 1), (r - 1, c), (r - 1, c + 1), (r + 1, c - 1), (r + 1, c)]
            near[ch] = "".join(_ROWS[i][j] for i, j in keys
                               if 0 <= i < len(_ROWS) and 0 <= j < len(_ROWS[i]))
    return near


NEIGHBOURS = _keyboard()
_WORD = re.compile(r"\S+")


def _pick(rng: Any, n: int, rate: float) -> list[int]:
    """``rate`` of ``n`` places (at least one when there is any), in order."""
    if n == 0:
        return []
    k = min(n, max(1, round(rate * n)))
    return sorted(int(i) for i in rng.choice(n, size=k, replace=False))


def typos(text: str, severity: int, rng: Any) -> str:
    """Letters replaced by a neighbouring key (the case kept)."""
    chars = list(text)
    letters = [i for i, ch in enumerate(chars) if ch.lower() in NEIGHBOURS]
    for i in _pick(rng, len(letters), CHAR_RATE[severity - 1]):
        ch = chars[letters[i]]
        near = NEIGHBOURS[ch.lower()]
        new = near[int(rng.integers(len(near)))]
        chars[letters[i]] = new.upper() if ch.isupper() else new
    return "".join(chars)


def swaps(text: str, severity: int, rng: Any) -> str:
    """In some words, two adjacent different characters trade places ("teh")."""
    words = [m for m in _WORD.finditer(text)
             if any(a != b for a, b in zip(m.group(), m.group()[1:]))]
    chars = list(text)
    for i in _pick(rng, len(words), WORD_RATE[severity - 1]):
        start, word = words[i].start(), words[i].group()
        places = [j for j in range(len(word) - 1) if word[j] != word[j + 1]]
        j = start + places[int(rng.integers(len(places)))]
        chars[j], chars[j + 1] = chars[j + 1], chars[j]
    return "".join(chars)


_CASES: tuple[Callable[[str], str], ...] = (str.upper, str.lower, str.swapcase, str.capitalize)


def case(text: str, severity: int, rng: Any) -> str:
    """Some words upper-cased, lower-cased, swapped or capitalised."""
    words = [m for m in _WORD.finditer(text) if any(f(m.group()) != m.group() for f in _CASES)]
    chars = list(text)
    for i in _pick(rng, len(words), WORD_RATE[severity - 1]):
        word = words[i].group()
        options = [f(word) for f in _CASES if f(word) != word]
        new = options[int(rng.integers(len(options)))]
        chars[words[i].start():words[i].end()] = list(new)
    return "".join(chars)


def whitespace(text: str, severity: int, rng: Any) -> str:
    """At some words, the space after it dropped (two words run together), a space put
    inside it, or the space before it doubled."""
    parts = re.findall(r"\S+|\s+", text)
    words = [i for i, p in enumerate(parts) if not p.isspace()]
    for i in _pick(rng, len(words), WORD_RATE[severity - 1]):
        at, op = words[i], int(rng.integers(3))
        word = parts[at]
        if op == 0 and at + 2 < len(parts) and parts[at + 1].isspace():
            parts[at + 1] = ""  # run into the next word
        elif op <= 1 and len(word) > 1:
            cut = 1 + int(rng.integers(len(word) - 1))
            parts[at] = word[:cut] + " " + word[cut:]
        else:
            parts[at] = " " + word
    return "".join(parts)


def text_corruptions() -> dict[str, Callable[[str, int, Any], str]]:
    return {"typos": typos, "swaps": swaps, "case": case, "whitespace": whitespace}
