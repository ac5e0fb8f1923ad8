"""Pictures of an evaluation for the model card (matplotlib's Agg backend): precision,
recall and F1 per entity type, and which type each gold entity was predicted as."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from zoo_text_ner.iob import chunks

__all__ = ["draw_report", "type_confusion"]

MISSED, SPURIOUS = "(missed)", "(none)"


def type_confusion(truth: list[list[str]], guess: list[list[str]]
                   ) -> tuple[list[str], list[str], list[list[int]]]:
    """Rows: gold types and ``(none)`` (predicted entities no gold entity has the span
    of); columns: predicted types and ``(missed)`` (gold entities no prediction has the
    span of). A cell counts entities with exactly the same words."""
    pairs = []
    for t, g in zip(truth, guess):
        gold = {(a, b): k for k, a, b in chunks(t)}
        pred = {(a, b): k for k, a, b in chunks(g)}
        pairs += [(k, pred.get(span, MISSED)) for span, k in gold.items()]
        pairs += [(SPURIOUS, k) for span, k in pred.items() if span not in gold]
    kinds = sorted({k for k, _ in pairs if k != SPURIOUS} | {k for _, k in pairs if k != MISSED})
    rows, cols = kinds + [SPURIOUS], kinds + [MISSED]
    matrix = [[0] * len(cols) for _ in rows]
    for k, p in pairs:
        matrix[rows.index(k)][cols.index(p)] += 1
    return rows, cols, matrix


def _bars(ax: Any, table: dict[str, dict[str, float]]) -> None:
    kinds = sorted(table, key=lambda k: -table[k]["support"])
    width = 0.27
    for i, (metric, name) in enumerate((("precision", "precision"), ("recall", "recall"),
                                        ("f1-score", "F1"))):
        xs = [j + (i - 1) * width for j in range(len(kinds))]
        ax.bar(xs, [table[k][metric] for k in kinds], width, label=name)
    ax.set_xticks(range(len(kinds)))
    ax.set_xticklabels([f"{k}\n({int(table[k]['support'])})" for k in kinds], fontsize=8,
                       rotation=30 if len(kinds) > 6 else 0)
    ax.set_ylim(0, 1)
    ax.set_ylabel("entity-level score")
    ax.set_title("per entity type (gold count)")
    ax.legend(fontsize=8)


def _matrix(ax: Any, rows: list[str], cols: list[str], matrix: list[list[int]]) -> None:
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(cols)))
    ax.set_xticklabels(cols, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(rows, fontsize=8)
    top = max((v for r in matrix for v in r), default=0)
    for i, r in enumerate(matrix):
        for j, v in enumerate(r):
            if v:
                ax.text(j, i, str(v), ha="center", va="center", fontsize=7,
                        color="white" if v > top / 2 else "black")
    ax.set_xlabel("predicted as (same words)")
    ax.set_ylabel("gold entity")
    ax.set_title("entity types")


def draw_report(truth: list[list[str]], guess: list[list[str]],
                table: dict[str, dict[str, float]], out: Path) -> list[str]:
    """``entity_types.png`` in ``out``: per-type scores and the type confusion. Nothing
    when the data holds no entity at all."""
    if not table:
        return []
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    rows, cols, matrix = type_confusion(truth, guess)
    n = len(table)
    fig, (left, right) = plt.subplots(1, 2, figsize=(max(9.0, 4 + 1.1 * n), 4.2 + 0.15 * n))
    try:
        _bars(left, table)
        _matrix(right, rows, cols, matrix)
        fig.tight_layout()
        out.mkdir(parents=True, exist_ok=True)
        fig.savefig(out / "entity_types.png", dpi=110)
    finally:
        plt.close(fig)
    return ["entity_types.png"]
