"""Retrieval (two modalities aligned by contrastive pretraining) and plain embeddings."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from zoo.plugin import DataError, Task, ZooError


class Retrieval(Task):
    outputs = ("embedding",)
    metric, higher_is_better = "recall_at_1", True
    metric_names = {"recall_at_1": "Recall@1", "recall_at_5": "Recall@5"}
    limitations = ("Embeds inputs for search and zero-shot classification; similarities "
                   "are meaningful only between the two aligned modalities.")
    example_output = "[{'embedding': {'image': [...], 'text': [...]}}]"
    #: the tasks an aligned model may be trained for instead (``zoo train --task``)
    derived = ("classification",)

    def pipeline_tag(self, modalities: Sequence[str]) -> str | None:
        return "feature-extraction"

    def check_target(self, targets: Mapping[str, Any], where: str,
                     labels: Sequence[str] | None = None,
                     inputs: Mapping[str, Any] | None = None) -> None:
        pass  # pairs carry no targets: their inputs are checked in prepare / metrics

    def prepare(self, model: Any, examples: Sequence[Any], categories: Any = None) -> bool:
        require_pairs(examples, model.head.modalities)
        return False

    def convert(self, model: Any, task: str, examples: Sequence[Any]) -> Any:
        """``zoo train --task classification`` on an aligned model: a classifier on the
        encoders the training data uses, their aligned weights kept."""
        if task not in self.derived:
            return super().convert(model, task, examples)
        from zoo.plugin import derive_model

        mods = [m for m in model.modalities if any(m in ex.inputs for ex in examples)]
        return derive_model(model, mods, task=task, head={"name": task, "labels": ["?"]},
                            suffix="-clf")

    def metrics(self, model: Any, examples: Sequence[Any], predictions: Sequence[dict],
                categories: Any = None) -> dict[str, float]:
        from zoo.metrics import retrieval_metrics

        mods = model.head.modalities
        require_pairs(examples, mods)
        emb = {m: [p["embedding"][m] for p in predictions] for m in mods}
        keys = {m: [str(ex.inputs[m]) for ex in examples] for m in mods}
        return retrieval_metrics(emb, keys)

    def zero_shot(self, model: Any, inputs: Sequence[Mapping[str, Any]],
                  labels: Sequence[str], template: str = "{}", batch_size: int = 32
                  ) -> list[dict[str, Any]]:
        """Each input's most similar text prompt (``template`` filled with each label) in
        the aligned space, CLIP style."""
        import torch

        if "text" not in model.encoders:
            raise ZooError("zero-shot classification needs a model aligned with text "
                           "(`zoo pretrain --encoders image=...,text=...`)")
        if not labels:
            raise ZooError("zero_shot needs labels=[...] (text prompts)")
        head = model.head
        other = next(m for m in head.modalities if m != "text")
        prompts = [{"text": _fill(template, label)} for label in labels]
        t = torch.cat([head.project("text", model.encode(model.preprocess(
            prompts[i:i + batch_size]))["text"][0].pooled)
            for i in range(0, len(prompts), batch_size)])  # (C, dim)
        results: list[dict[str, Any]] = []
        for i in range(0, len(inputs), batch_size):
            chunk = inputs[i:i + batch_size]
            if any(x.get(other) is None for x in chunk):
                raise DataError(f"zero-shot inputs need {other!r}")
            out, _ = model.encode(model.preprocess([{other: x[other]} for x in chunk]))[other]
            sims = head.logit_scale.exp() * head.project(other, out.pooled) @ t.T
            for p in sims.softmax(-1).tolist():
                best = max(range(len(p)), key=p.__getitem__)
                results.append({"label": str(labels[best]), "score": p[best],
                                "scores": dict(zip(map(str, labels), p))})
        return results


def _fill(template: str, label: Any) -> str:
    """``template`` with ``{}`` replaced by the label: a plain substitution, never
    ``str.format`` (a template could otherwise ask for attributes or huge padding)."""
    if not isinstance(template, str) or len(template) > 200 or template.count("{}") > 1 or \
            template.replace("{}", "").count("{") or template.replace("{}", "").count("}"):
        from zoo.errors import ZooError

        raise ZooError(f"template must be text of at most 200 characters with at most one "
                       f"'{{}}' for the label and no other braces, got {str(template)[:60]!r}")
    return template.replace("{}", str(label)) if "{}" in template else f"{template} {label}"


class Embedding(Retrieval):
    limitations = "Raw encoder embeddings: no task head."
    example_output = "[{'embedding': {...}}]"
    derived = ()
    encoder_only = True

    def prepare(self, model: Any, examples: Sequence[Any], categories: Any = None) -> bool:
        raise ZooError("an encoder-only model has no head to train; compose it into a task "
                       "model (registry.toml or zoo.compose) first")

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
