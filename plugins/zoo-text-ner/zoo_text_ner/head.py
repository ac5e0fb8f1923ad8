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
    def _word_probs(self, probs: torch.Tensor, words: torch.Tensor, n_words: int,
                    aggregation: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(W, C) probabilities per word from its pieces' (T, C), and (W,) whether the word
        has a piece at all (it may be cut off by max_length)."""
        t = min(probs.shape[0], words.shape[0])
        w = words[:t]
        pos = ((w >= 0) & (w < n_words)).nonzero().squeeze(1)  # (P,)
        ids, p = w[pos], probs[pos]  # (P,), (P, C); a word's pieces are adjacent
        out = probs.new_zeros((n_words, probs.shape[1]))  # (W, C)
        count = probs.new_zeros(n_words).index_add_(0, ids, probs.new_ones(len(ids)))
        if aggregation == "average":
            out.index_add_(0, ids, p)
            out /= count.clamp(min=1).unsqueeze(1)
            return out, count > 0
        keep = torch.ones_like(ids, dtype=torch.bool)
        if aggregation == "max":  # the piece whose best label is surest, for each word
            sure = p.max(-1).values  # (P,)
            best = sure.new_full((n_words,), -1.0).scatter_reduce(0, ids, sure, reduce="amax")
            keep = sure == best[ids]
        ids, p = ids[keep], p[keep]
        first = torch.ones_like(ids, dtype=torch.bool)  # one piece per word: the earliest
        first[1:] = ids[1:] != ids[:-1]
        out[ids[first]] = p[first]
        return out, count > 0

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
        results = []
        for b in range(probs.shape[0]):
            text = self._text(batch, b)
            if text is None:
                raise DataError("token classification answers in the input's characters; "
                                "the batch carries no raw text")
            spans = word_spans(text)
            word_probs, present = self._word_probs(probs[b], words[b], len(spans), aggregation)
            score, best = word_probs.max(-1)  # (W,), (W,)
            scores = [float(s) if ok else 0.0 for s, ok in zip(score.tolist(), present.tolist())]
            tags = repair([self.labels[k] if ok else OUTSIDE
                           for k, ok in zip(best.tolist(), present.tolist())])
            results.append(_answer(text, spans, tags, scores, threshold))
        return results


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
