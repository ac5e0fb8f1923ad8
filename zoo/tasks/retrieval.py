"""Retrieval (two modalities aligned by contrastive pretraining) and plain embeddings."""
from __future__ import annotations

from typing import Any, Sequence

from zoo.errors import DataError, ZooError
from zoo.base.task import Task


class Retrieval(Task):
    outputs = ("embedding",)
    metric, higher_is_better = "recall_at_1", True
    metric_names = {"recall_at_1": "Recall@1", "recall_at_5": "Recall@5"}
    limitations = ("Embeds inputs for search and zero-shot classification; similarities "
                   "are meaningful only between the two aligned modalities.")
    example_output = "[{'embedding': {'image': [...], 'text': [...]}}]"

    def pipeline_tag(self, modalities: Sequence[str]) -> str | None:
        return "feature-extraction"

    def check_targets(self, examples: Sequence[Any]) -> None:
        pass

    def prepare(self, model: Any, examples: Sequence[Any], categories: Any = None) -> bool:
        require_pairs(examples, model.head.modalities)
        return False

    def metrics(self, model: Any, examples: Sequence[Any], predictions: Sequence[dict],
                categories: Any = None) -> dict[str, float]:
        import zoo.metrics as metrics

        mods = model.head.modalities
        require_pairs(examples, mods)
        emb = {m: [p["embedding"][m] for p in predictions] for m in mods}
        keys = {m: [str(ex.inputs[m]) for ex in examples] for m in mods}
        return metrics.retrieval_metrics(emb, keys)


class Embedding(Retrieval):
    limitations = "Raw encoder embeddings: no task head."
    example_output = "[{'embedding': {...}}]"

    def prepare(self, model: Any, examples: Sequence[Any], categories: Any = None) -> bool:
        raise ZooError("an encoder-only model has no head to train; compose it into a task "
                       "model (registry.toml or zoo.build.compose) first")

    def metrics(self, model: Any, examples: Sequence[Any], predictions: Sequence[dict],
                categories: Any = None) -> dict[str, float]:
        raise ZooError("an encoder-only model has no task metrics; evaluate a task model "
                       "composed from it")


def require_pairs(examples: Sequence[Any], modalities: Sequence[str]) -> None:
    """Every example must hold both modalities of the alignment; else say which line."""
    for ex in examples:
        missing = [m for m in modalities if ex.inputs.get(m) is None]
        if missing:
            raise DataError(f"line {ex.line}: a retrieval pair needs {' and '.join(missing)}")
