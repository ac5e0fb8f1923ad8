"""The tagging task (one tag per word) and its head."""
from collections import Counter
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from zoo.plugin import (DataError, Example, Head, Task, ZooError, replace_head,
                        word_spans)


def _tags(targets, where):
    tags = targets.get("tags")
    if not isinstance(tags, list) or not tags or not all(
            isinstance(t, str) and t.strip() for t in tags):
        raise DataError(f"{where}: 'tags' must be a list of tags (strings), one per word")
    return tags


class Tagging(Task):
    outputs = ("tags",)
    metric, higher_is_better = "accuracy", True
    metric_names = {"accuracy": "Token accuracy", "f1_macro": "Macro F1 over tags"}
    metrics_library = "scikit-learn"
    limitations = "Tags whitespace-separated words; a test plugin of the contract."
    example_output = "[{'tags': [...], 'words': [...], 'scores': [...]}]"
    exportable = True

    def pipeline_tag(self, modalities):
        return "token-classification"

    def check_target(self, targets, where, labels=None, inputs=None):
        tags = _tags(targets, where)
        text = (inputs or {}).get("text")
        if isinstance(text, str) and len(word_spans(text)) != len(tags):
            raise DataError(f"{where}: {len(tags)} tags for {len(word_spans(text))} words")
        unknown = [t for t in tags if labels is not None and t not in labels]
        if unknown:
            raise DataError(f"{where}: unknown tag {unknown[0]!r}")

    def targets_from_correction(self, correction, labels, where="correction", inputs=None):
        if isinstance(correction, list):  # the tags alone
            correction = {"tags": correction}
        return super().targets_from_correction(correction, labels, where, inputs)

    def read_file(self, path: Path):
        """CoNLL columns: ``word ... tag`` per line, a blank line between sentences."""
        if path.suffix.lower() != ".conll":
            return None
        examples, words, tags, start = [], [], [], 1
        lines = path.read_text(encoding="utf-8").splitlines() + [""]
        for n, line in enumerate(lines, 1):
            cells = line.split()
            if cells:
                if len(cells) < 2:
                    raise DataError(f"{path}:{n}: expected 'word tag', got {line!r}")
                words.append(cells[0])
                tags.append(cells[-1])
                continue
            if words:
                examples.append(Example(start, {"text": " ".join(words)}, {"tags": tags}))
            words, tags, start = [], [], n + 1
        return examples, None

    def prepare(self, model, examples, categories=None):
        labels = sorted({t for ex in examples for t in ex.targets["tags"]})
        if labels != model.labels:
            replace_head(model, labels=labels)
            return True
        return False

    def metrics(self, model, examples, predictions, categories=None):
        from sklearn.metrics import accuracy_score, f1_score

        truth, guess = [], []
        for ex, p in zip(examples, predictions):
            tags = _tags(ex.targets, f"line {ex.line}")
            if len(p["tags"]) != len(tags):
                raise DataError(f"line {ex.line}: {len(p['tags'])} predicted tags for "
                                f"{len(tags)} words")
            truth += tags
            guess += p["tags"]
        return {"accuracy": float(accuracy_score(truth, guess)),
                "f1_macro": float(f1_score(truth, guess, average="macro", zero_division=0))}

    def pseudo_label(self, prediction):
        return {"tags": list(prediction["tags"])}, min(prediction["scores"], default=0.0)

    def describe_targets(self, targets):
        counts = Counter(t for x in targets for t in x.get("tags") or [])
        return {"labels": dict(sorted(counts.items())),
                "words": sum(counts.values())}

    def card_section(self, config):
        return "Outputs: `tags`, one per whitespace-separated word, with `words` and `scores`."


class WordTagger(Head):
    """Logits per token of a text encoder's sequence output (one tensor: it exports); a
    word's tag is read at its first piece (``batch[modality].word_ids``), so a word split
    into several pieces still gets exactly one tag."""

    def __init__(self, inputs, labels=("O",), modality="text"):
        super().__init__()
        if modality not in inputs or "sequence" not in inputs[modality]["outputs"]:
            raise ZooError(f"word-tagger needs a {modality} encoder with a sequence output")
        self.labels, self.modality = [str(x) for x in labels], modality
        self.proj = nn.Linear(int(inputs[modality]["dim"]), len(self.labels))

    def forward(self, encoded, batch):
        out, index = encoded[self.modality]
        if index.numel() != batch.size:
            raise DataError("tagging needs a text in every input")
        return self.proj(out.sequence)  # (B, T, C)

    def _words(self, batch):
        words = batch[self.modality].word_ids if batch is not None else None
        if words is None:
            raise DataError("tagging needs word ids from the text encoder's preprocessing "
                            "(a fast tokenizer)")
        return words

    def encode_targets(self, targets, batch=None):
        """(B, T): each word's tag id at its first piece, -100 elsewhere."""
        words = self._words(batch)
        y = torch.full(words.shape, -100, dtype=torch.long)
        index = {t: i for i, t in enumerate(self.labels)}
        for b, t in enumerate(targets):
            tags = _tags(t, f"example {b}")
            for w, pos in _first_pieces(words[b]).items():
                if w < len(tags):
                    if tags[w] not in index:
                        raise DataError(f"example {b}: unknown tag {tags[w]!r}")
                    y[b, pos] = index[tags[w]]
        return y

    def loss(self, outputs, targets):
        return F.cross_entropy(outputs.reshape(-1, len(self.labels)),
                               targets.to(outputs.device).reshape(-1), ignore_index=-100)

    def decode(self, outputs, batch=None):
        words = self._words(batch)
        probs = outputs.softmax(-1)  # (B, T, C)
        results = []
        for b in range(probs.shape[0]):
            first = _first_pieces(words[b])
            text = batch.inputs[b].get(self.modality) if batch.inputs is not None else None
            spans = word_spans(text) if isinstance(text, str) else []
            n = len(spans) if isinstance(text, str) else len(first)
            tags, scores = [], []
            for w in range(n):  # words cut off by the encoder's max length: the first label
                if w in first and first[w] < probs.shape[1]:
                    p = probs[b, first[w]]
                    k = int(p.argmax())
                    tags.append(self.labels[k])
                    scores.append(float(p[k]))
                else:
                    tags.append(self.labels[0])
                    scores.append(0.0)
            results.append({"tags": tags, "words": [text[s:e] for s, e in spans],
                            "scores": scores})
        return results


def _first_pieces(word_ids):
    """word -> the position of its first piece in a (T,) row of word ids."""
    first = {}
    for pos, w in enumerate(word_ids.tolist()):
        if w >= 0 and w not in first:
            first[w] = pos
    return first
