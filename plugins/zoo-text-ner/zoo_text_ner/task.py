"""The token-classification task: IOB2 tags per word, entity spans, seqeval metrics."""
from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path
from typing import Any, Mapping, Sequence

from zoo.plugin import DataError, Task, replace_head, word_spans
from zoo_text_ner.iob import (chunks, entity_types, label_set, spans_to_tags, split_tag,
                              tag_problem)

__all__ = ["TokenClassification", "target_tags"]

_NEEDS = ("a token-classification example needs 'tags' (IOB2, one per whitespace-separated "
          "word) or 'entities' ([{\"start\", \"end\", \"label\"}] character spans)")


def _text(inputs: Mapping[str, Any] | None) -> str | None:
    text = (inputs or {}).get("text")
    return text if isinstance(text, str) else None


def target_tags(targets: Mapping[str, Any], where: str, text: str | None) -> list[str]:
    """One example's IOB2 tags: its ``tags``, or its ``entities`` spans converted over the
    words of ``text``. A DataError starting with ``where`` when neither can be had."""
    if "tags" in targets:
        return targets["tags"]
    if "entities" in targets:
        if text is None:
            raise DataError(f"{where}: 'entities' are character spans of the text; the "
                            f"example has no text")
        try:
            return spans_to_tags(text, targets["entities"], word_spans(text))
        except ValueError as e:
            raise DataError(f"{where}: {e}") from None
    raise DataError(f"{where}: {_NEEDS}")


def _check_tokens(tokens: Any, where: str) -> None:
    for i, tok in enumerate(tokens if isinstance(tokens, list) else []):
        if not isinstance(tok, str) or not tok or any(c.isspace() for c in tok):
            what = "is empty" if tok == "" else "has whitespace inside"
            raise DataError(f"{where}: token {i + 1} {tok!r} {what}; words are "
                            f"whitespace-separated: split it (and its tag) or drop it")


def _allowed(tag: str, labels: Sequence[str]) -> bool:
    """``O`` always; another tag when it, or its entity type, is among ``labels``."""
    return tag == "O" or tag in labels or split_tag(tag)[1] in labels


class TokenClassification(Task):
    outputs = ("entities", "tags", "scores")
    metric, higher_is_better = "f1", True
    # LP-FT (freeze="auto"): a frozen-encoder probe is followed by fine-tuning below this
    finetune_below = 0.9
    requires = ("text",)
    exportable = True  # the head's forward gives (B, T, C) logits; decode runs after it
    metric_names = {"f1": "Entity F1 (micro)", "precision": "Entity precision (micro)",
                    "recall": "Entity recall (micro)", "accuracy": "Word accuracy"}
    metrics_library = "seqeval (entity level, conlleval-compatible)"
    limitations = ("Tags whitespace-separated words: punctuation attached to a word belongs "
                   "to it ('Paris,'), so split text into words the way the training data "
                   "did. Words past the text encoder's max_length are tagged O with score 0.")
    example_output = ("[{'entities': [{'text': 'Ada Lovelace', 'label': 'PER', 'start': 0, "
                      "'end': 12, 'score': 0.97}], 'tags': ['B-PER', 'I-PER', 'O', ...], "
                      "'scores': [0.98, 0.96, 0.99, ...]}]")

    def pipeline_tag(self, modalities: Sequence[str]) -> str | None:
        return "token-classification" if list(modalities) == ["text"] else None

    # ---- targets --------------------------------------------------------------------
    def check_target(self, targets, where, labels=None, inputs=None) -> None:
        text = _text(inputs)
        spans = word_spans(text) if text is not None else None
        if "tokens" in targets:  # a tokens row the reader could not turn into words
            _check_tokens(targets["tokens"], where)
        tags = target_tags(targets, where, text)
        words = [text[s:e] for s, e in spans] if spans is not None else None
        problem = tag_problem(tags, words)
        if problem:
            raise DataError(f"{where}: {problem}")
        if spans is not None and len(tags) != len(spans):
            raise DataError(f"{where}: {len(tags)} tags for {len(spans)} words (words are "
                            f"the whitespace-separated pieces of the text)")
        if labels is not None:
            bad = next((t for t in tags if not _allowed(t, labels)), None)
            if bad is not None:
                raise DataError(f"{where}: tag {bad!r} is not among the labels "
                                f"({', '.join(labels)[:120]})")

    def targets_from_correction(self, correction, labels, where="correction", inputs=None):
        """A list of tags, a list of entity spans (``[]``: no entity), or an object with
        ``tags`` or ``entities`` -> ``{"tags": [...]}``, checked against the text."""
        if isinstance(correction, Mapping):
            keys = set(correction)
            if len(keys) != 1 or not keys <= {"tags", "entities"}:
                raise DataError(f"{where} must be a list of tags, a list of entities "
                                f"{{\"start\", \"end\", \"label\"}}, or an object with 'tags' "
                                f"or 'entities' (one of them), not {sorted(map(str, keys))}")
            targets = dict(correction)
        elif isinstance(correction, list) and all(isinstance(x, str) for x in correction) \
                and correction:
            targets = {"tags": correction}
        elif isinstance(correction, list) and all(isinstance(x, Mapping) for x in correction):
            targets = {"entities": [dict(x) for x in correction]}
        else:
            raise DataError(f"{where} must be a list of IOB2 tags (one per word) or a list "
                            f"of entities {{\"start\", \"end\", \"label\"}}")
        out = {"tags": target_tags(targets, where, _text(inputs))}
        self.check_target(out, where, labels, inputs)
        return out

    def read_file(self, path: Path):
        from zoo_text_ner.readers import read_path

        examples = read_path(Path(path))
        return (examples, None) if examples is not None else None

    def describe_targets(self, targets: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Entity counts by type (``labels``), and how many words and sentences."""
        types: Counter = Counter()
        words, empty, tagged = 0, 0, False
        for t in targets:
            if isinstance(t.get("tags"), list):
                found = [k for k, _, _ in chunks(t["tags"])]
                words, tagged = words + len(t["tags"]), True
            else:  # spans (zoo data check --task token-classification on {text, entities})
                found = [str(e.get("label")) for e in t.get("entities") or []
                         if isinstance(e, Mapping)]
            types.update(found)
            empty += not found
        out = {"labels": dict(sorted(types.items())), "entities": sum(types.values()),
               "sentences": len(targets), "sentences_without_entities": empty}
        return {**out, "words": words} if tagged else out

    def sample_targets(self, n: int) -> None:
        """None: tags depend on the words of each input, which this hook does not see."""
        return None

    # ---- training and evaluation ------------------------------------------------------
    def prepare(self, model: Any, examples: Sequence[Any], categories: Any = None) -> bool:
        """A head whose labels lack some of the data's tags is rebuilt for the data's
        entity types (``O`` + ``B-``/``I-`` of each); a label set that covers them stays."""
        tags = {t for ex in examples
                for t in target_tags(ex.targets, f"line {ex.line}", _text(ex.inputs))}
        if tags <= set(model.labels or ()):
            return False
        replace_head(model, labels=label_set(sorted(tags)))
        return True

    def probe_start(self, probe: Any) -> dict[str, Any] | None:
        """A frozen, cached probe starts from a logistic regression fitted in closed form on
        the first-piece features (``zoo_text_ner.probe``)."""
        from zoo_text_ner.probe import closed_form_start

        return closed_form_start(probe)

    def _sequences(self, examples, predictions) -> tuple[list[list[str]], list[list[str]]]:
        truth, guess = [], []
        for ex, p in zip(examples, predictions):
            where = f"line {ex.line}"
            tags = list(target_tags(ex.targets, where, _text(ex.inputs)))
            pred = list(p["tags"])
            if len(pred) != len(tags):
                raise DataError(f"{where}: {len(pred)} predicted tags for {len(tags)} words")
            truth.append(tags)
            guess.append(pred)
        return truth, guess

    def metrics(self, model, examples, predictions, categories=None) -> dict[str, float]:
        """Entity-level micro precision / recall / F1 (seqeval), word accuracy, and F1
        per entity type as ``f1_TYPE``."""
        from seqeval.metrics import (accuracy_score, f1_score, precision_score,
                                     recall_score)

        truth, guess = self._sequences(examples, predictions)
        result = {"f1": float(f1_score(truth, guess, zero_division=0)),
                  "precision": float(precision_score(truth, guess, zero_division=0)),
                  "recall": float(recall_score(truth, guess, zero_division=0)),
                  "accuracy": float(accuracy_score(truth, guess))}
        for kind, row in per_type(truth, guess).items():
            result[f"f1_{kind}"] = row["f1-score"]
        return result

    def report(self, model, examples, predictions, out: Path) -> list[str]:
        from zoo_text_ner.report import draw_report

        truth, guess = self._sequences(examples, predictions)
        return draw_report(truth, guess, per_type(truth, guess), Path(out))

    def pseudo_label(self, prediction: Mapping[str, Any]):
        """The predicted tags; the confidence is the least sure word's probability."""
        scores = prediction.get("scores") or [1.0]
        return {"tags": list(prediction["tags"])}, float(min(scores))

    # ---- card ------------------------------------------------------------------------
    def card_section(self, config: dict[str, Any]) -> str:
        labels = config.get("labels") or \
            ((config.get("head") or {}).get("kwargs") or {}).get("labels") or []
        from zoo.plugin import markdown_code as md

        rows = "".join(f"| {md(k)} | {md('B-' + k)}, {md('I-' + k)} |\n"
                       for k in entity_types(labels))
        return (
            "## Entities\n\n"
            "`predict` gives, per text, `entities`: `{\"text\", \"label\", \"start\", \"end\", "
            "\"score\"}` with character offsets into the input (`text[start:end]` is the "
            "entity's text; the score is the mean of its words' probabilities); `tags`: one "
            "IOB2 tag per whitespace-separated word; `scores`: each word's probability. A "
            "word split into sub-word pieces is tagged at its first piece (predict option "
            "`aggregation`: `first`, `average` or `max`; `threshold` drops entities scored "
            "below it).\n\n"
            "| entity type | tags |\n| --- | --- |\n" + rows + "\n"
            "Evaluation is entity-level, computed by seqeval (conlleval-compatible): an "
            "entity counts when its type and both boundaries match; precision, recall and "
            "F1 are micro-averaged over entities, `f1_TYPE` is each type's F1.\n")


def per_type(truth: list[list[str]], guess: list[list[str]]) -> dict[str, dict[str, float]]:
    """seqeval's report per entity type: precision, recall, f1-score, support."""
    from seqeval.metrics import classification_report

    if not any(chunks(t) for t in truth) and not any(chunks(g) for g in guess):
        return {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = classification_report(truth, guess, output_dict=True, zero_division=0)
    return {k: {m: float(v) for m, v in row.items()} for k, row in report.items()
            if not k.endswith(" avg")}
