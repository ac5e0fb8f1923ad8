"""Explaining text (``zoo explain``): words are the units (runs of consecutive words when
a text has more words than the unit budget); a removed word is deleted; the explanation is
drawn as the words coloured by attribution, in HTML and on the terminal."""
from __future__ import annotations

import html
from pathlib import Path
from typing import Any, Sequence

from zoo.plugin import word_spans

__all__ = ["text_units", "text_ablate", "text_html", "text_terminal"]


def text_units(text: str, max_units: int) -> list[dict[str, Any]]:
    """``{"word", "start", "end"}`` per word (character offsets into ``text``); above
    ``max_units`` words, each unit is a run of consecutive words (``word`` holds the run)."""
    spans = word_spans(text)
    if not spans:
        return [{"word": text, "start": 0, "end": len(text)}]
    per = -(-len(spans) // max_units)  # words per unit, rounded up
    units = []
    for i in range(0, len(spans), per):
        start, end = spans[i][0], spans[min(i + per, len(spans)) - 1][1]
        units.append({"word": text[start:end], "start": start, "end": end})
    return units


def text_ablate(text: str, units: Sequence[dict[str, Any]], keep: Sequence[bool]) -> str:
    """The text with the removed units deleted (kept ones joined by single spaces): an
    empty string when none is kept."""
    return " ".join(text[u["start"]:u["end"]] for u, k in zip(units, keep) if k)


def _colour(a: float, scale: float) -> tuple[int, int, int]:
    """Red for a word that raised the score, blue for one that lowered it; white for 0."""
    t = min(1.0, abs(a) / scale) if scale else 0.0
    fade = int(round(255 - 175 * t))
    return (255, fade, fade) if a > 0 else (fade, fade, 255)


def text_html(text: str, units: Sequence[dict[str, Any]], attributions: Sequence[float],
              stem: Path, title: str) -> list[str]:
    """``STEM.html``: the text with each unit's background coloured by its attribution
    (hover shows the number)."""
    scale = max((abs(a) for a in attributions), default=0.0)
    parts, pos = [], 0
    for u, a in zip(units, attributions):
        parts.append(html.escape(text[pos:u["start"]]))
        r, g, b = _colour(a, scale)
        parts.append(f'<span style="background: rgb({r},{g},{b})" title="{a:+.4f}">'
                     f'{html.escape(text[u["start"]:u["end"]])}</span>')
        pos = u["end"]
    parts.append(html.escape(text[pos:]))
    path = stem.with_name(stem.name + ".html")
    path.write_text(
        "<!doctype html>\n<meta charset=\"utf-8\">\n"
        f"<title>{html.escape(title)}</title>\n"
        "<style>body{font:16px/1.9 sans-serif;max-width:48em;margin:2em auto}"
        "span{padding:0 .15em;border-radius:.2em}</style>\n"
        f"<h3>{html.escape(title)}</h3>\n<p>{''.join(parts)}</p>\n"
        "<p><small>red: raised the score; blue: lowered it (zoo explain)</small></p>\n",
        encoding="utf-8")
    return [str(path)]


def text_terminal(text: str, units: Sequence[dict[str, Any]],
                  attributions: Sequence[float]) -> str:
    """The text with each unit on a background coloured by its attribution (24-bit ANSI
    colours; ``click.echo`` drops them when the output is not a terminal)."""
    import click

    scale = max((abs(a) for a in attributions), default=0.0)
    parts, pos = [], 0
    for u, a in zip(units, attributions):
        parts.append(text[pos:u["start"]])
        parts.append(click.style(text[u["start"]:u["end"]], fg="black", bg=_colour(a, scale)))
        pos = u["end"]
    return "  " + "".join(parts) + text[pos:]
