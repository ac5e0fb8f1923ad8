"""The token-classification head: per-token logits over a text encoder's sequence output,
trained and read at the first sub-word piece of each word (``WORD_IDS``), decoded into one
IOB2 tag per word and entity spans with character offsets."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from zoo.plugin import DataError, Head, ZooError, word_spans
from zoo_text_ner.iob import DEFAULT_LABELS, OUTSIDE, entities_from_tags, repair, split_tag
from zoo_text_ner.task import target_tags

__all__ = ["TokenClassifierHead", "AGGREGATIONS"]

IGNORE = -100  # cross_entropy's ignore_index: pieces after a word's first, specials, padding
#: how a word's probabilities come from its pieces (as transformers' pipeline names them):
#: the first piece (what training supervises), the mean over pieces, or the surest piece
AGGREGATIONS = ("first", "average", "max")


def _check_labels(labels: Sequence[Any]) -> list[str]:
    labels = [str(x) for x in labels]
    if OUTSIDE not in labels or len(set(labels)) != len(labels):
        raise ZooError(f"token-classifier labels must be unique IOB2 tags including 'O'; got "
                       f"{labels[:12]}")
    for tag in labels:
        try:
            split_tag(tag)
        except ValueError:
            raise ZooError(f"token-classifier label {tag!r} is not an IOB2 tag ('O', "
                           f"'B-TYPE', 'I-TYPE')") from None
    return labels


def first_pieces(word_ids: torch.Tensor) -> torch.Tensor:
    """(B, T) bool: True at the first piece of each word (word ids >= 0; specials and
    padding are -1)."""
    prev = F.pad(word_ids[:, :-1], (1, 0), value=-1)  # (B, T): the previous token's word
    return (word_ids >= 0) & (word_ids != prev)


class TokenClassifierHead(Head):
    """Dropout, then a linear layer (or a one-hidden-layer MLP with ``hidden > 0``) on every
    token of the text encoder's sequence: (B, T, D) -> (B, T, C) logits, one tensor, so
    the model exports to ONNX."""

    decode_options = ("aggregation", "threshold")

    def __init__(self, inputs: Mapping[str, Any], labels: Sequence[str] = DEFAULT_LABELS,
                 modality: str = "text", hidden: int = 0, dropout: float = 0.1) -> None:
        super().__init__()
        spec = inputs.get(modality)
        if spec is None or "sequence" not in spec.get("outputs", ()):
            raise ZooError(f"token-classifier needs a {modality} encoder with a sequence "
                           f"output; the model has {', '.join(inputs) or 'none'}")
        self.labels = _check_labels(labels)
        self.modality = modality
        dim, n = int(spec["dim"]), len(self.labels)
        self.dropout = nn.Dropout(float(dropout))
        self.proj = nn.Sequential(nn.Linear(dim, int(hidden)), nn.GELU(),
                                  nn.Linear(int(hidden), n)) if hidden else nn.Linear(dim, n)

    def forward(self, encoded: Mapping[str, Any], batch: Any) -> torch.Tensor:
        if self.modality not in encoded:
            raise DataError(f"token classification needs a {self.modality} in every input")
        out, index = encoded[self.modality]
        if index.numel() != batch.size:
            raise DataError(f"token classification needs a {self.modality} in every input")
        return self.proj(self.dropout(out.sequence))  # (B, T, C)

    # ---- helpers ------------------------------------------------------------------------
    def _word_ids(self, batch: Any) -> torch.Tensor:
        words = batch[self.modality].word_ids if batch is not None and \
            self.modality in batch else None
        if words is None:
            raise DataError("token classification needs word ids from the text encoder's "
                            "preprocessing (a transformers encoder with a fast tokenizer)")
        return words.cpu()

    def _text(self, batch: Any, b: int) -> str | None:
        inputs = getattr(batch, "inputs", None)
        value = inputs[b].get(self.modality) if inputs is not None else None
        return value if isinstance(value, str) else None

    # ---- training -----------------------------------------------------------------------
    def encode_targets(self, targets: Sequence[Mapping[str, Any]], batch: Any = None
                       ) -> torch.Tensor:
        """(B, T) label ids at each word's first piece, IGNORE elsewhere (words cut off by
        the encoder's max_length are not trained on)."""
        words = self._word_ids(batch)
        first = first_pieces(words)
        ids = {t: i for i, t in enumerate(self.labels)}
        y = torch.full(words.shape, IGNORE, dtype=torch.long)
        for b, t in enumerate(targets):
            tags = target_tags(t, f"example {b + 1}", self._text(batch, b))
            pos = first[b].nonzero().squeeze(1)  # (P,)
            pos = pos[words[b, pos] < len(tags)]
            unknown = next((x for x in tags if x not in ids), None)
            if unknown is not None:
                raise DataError(f"example {b + 1}: tag {unknown!r} is not among the head's "
                                f"labels ({', '.join(self.labels)[:120]})")
            y[b, pos] = torch.tensor([ids[tags[w]] for w in words[b, pos].tolist()],
                                     dtype=torch.long)
        return y

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        y = targets.to(outputs.device).reshape(-1)
        if not bool((y != IGNORE).any()):  # nothing to learn here (all words cut off)
            return outputs.sum() * 0.0
        return F.cross_entropy(outputs.reshape(-1, len(self.labels)), y, ignore_index=IGNORE)

    # ---- decoding -----------------------------------------------------------------------
    def decode(self, outputs: torch.Tensor, batch: Any = None, aggregation: str = "first",
               threshold: float = 0.0) -> list[dict[str, Any]]:
        if aggregation not in AGGREGATIONS:
            raise ZooError(f"aggregation must be one of {', '.join(AGGREGATIONS)}, not "
                           f"{aggregation!r}")
        try:
            threshold = float(threshold)
        except (TypeError, ValueError):
            raise ZooError(f"threshold must be a number in [0, 1], not {threshold!r}") from None
        words = self._word_ids(batch)
        probs = outputs.detach().float().softmax(-1).cpu()  # (B, T, C)
        top, best = probs.max(-1)  # (B, T): each piece's surest label, once for the batch
        rows = zip(words.tolist(), top.tolist(), best.tolist())
        results = []
        for b, (w_row, top_row, best_row) in enumerate(rows):
            text = self._text(batch, b)
            if text is None:
                raise DataError("token classification answers in the input's characters; "
                                "the batch carries no raw text")
            spans = word_spans(text)
            if aggregation == "average":
                choices = _averaged(probs[b], words[b], len(spans))
            else:
                choices = _picked(w_row, top_row, best_row, len(spans), aggregation == "max")
            scores = [c[1] if c else 0.0 for c in choices]
            tags = repair([self.labels[c[0]] if c else OUTSIDE for c in choices])
            results.append(_answer(text, spans, tags, scores, threshold))
        return results


def _picked(words: list[int], top: list[float], best: list[int], n_words: int,
            surest: bool) -> list:
    """Each word's label from one of its pieces: the first, or (``surest``) the one whose
    best label is most probable (the earliest on a tie). Words with no piece (cut off by
    the encoder's max_length) get None."""
    out: list = [None] * n_words
    for w, score, k in zip(words, top, best):  # zip: as many pieces as both have
        if 0 <= w < n_words and (out[w] is None or (surest and score > out[w][1])):
            out[w] = (k, score)
    return out


def _averaged(probs: torch.Tensor, words: torch.Tensor, n_words: int) -> list:
    """Each word's label from the mean of its pieces' probabilities."""
    t = min(probs.shape[0], words.shape[0])
    w = words[:t]
    keep = (w >= 0) & (w < n_words)  # (T,)
    ids, p = w[keep], probs[:t][keep]  # (P,), (P, C)
    sums = probs.new_zeros((n_words, probs.shape[1])).index_add_(0, ids, p)  # (W, C)
    count = torch.bincount(ids, minlength=n_words)  # (W,)
    score, best = (sums / count.clamp(min=1).unsqueeze(1)).max(-1)  # (W,), (W,)
    return [(k, s) if c else None
            for k, s, c in zip(best.tolist(), score.tolist(), count.tolist())]


def _answer(text: str, spans: Sequence[tuple[int, int]], tags: list[str],
            scores: list[float], threshold: float) -> dict[str, Any]:
    """The result for one text; entities scored below ``threshold`` are dropped (their
    words tagged O)."""
    entities = entities_from_tags(text, spans, tags, scores)
    if threshold > 0:
        kept = []
        for ent in entities:
            if ent["score"] >= threshold:
                kept.append(ent)
                continue
            for i, (s, e) in enumerate(spans):
                if ent["start"] <= s and e <= ent["end"]:
                    tags[i] = OUTSIDE
        entities = kept
    return {"entities": entities, "tags": tags, "scores": scores}
