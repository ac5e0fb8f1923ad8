"""``speaker-verifier``: the verification head on a speaker encoder's pooled embedding.

- ``forward`` gives each utterance's L2-normalised embedding (B, D): the encoder's own,
  or, with ``adapt=True``, through a residual linear map that starts at zero (so an
  untrained adapter changes nothing).
- Enrolled speakers (``labels``) each hold a vector (``centroids``, (S, D)): set by the
  task's ``prepare`` to the normalised mean embedding of the speaker's training
  utterances, then trained with the additive angular margin softmax (AAM, ArcFace) over
  the enrolled speakers, together with the adapter when there is one.
- ``decode`` gives ``embedding``, and against the enrolled speakers the best match
  ``speaker``, its cosine ``score``, ``accepted`` (score >= ``threshold``) and every
  speaker's cosine (``scores``); ``speaker=ID`` verifies a claimed speaker instead, and
  ``threshold=`` overrides the decision threshold. Without enrolled speakers only the
  embedding is given (the other keys are None / empty).
- ``threshold`` (utterance against an enrolled speaker) and ``pair_threshold`` (utterance
  against utterance) are buffers: chosen as EER thresholds on the eval split while
  training, saved with the model.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from zoo.plugin import DataError, Head, ZooError

__all__ = ["SpeakerVerifier", "aam_logits"]


def aam_logits(cos: torch.Tensor, target: torch.Tensor, margin: float, scale: float
               ) -> torch.Tensor:
    """ArcFace logits: the target class's angle widened by ``margin`` radians (where that
    keeps it below pi; past it, a linear stand-in), every cosine times ``scale``."""
    cos = cos.clamp(-1 + 1e-7, 1 - 1e-7)  # (B, S)
    sin = (1.0 - cos ** 2).sqrt()
    widened = cos * math.cos(margin) - sin * math.sin(margin)  # cos(theta + m)
    widened = torch.where(cos > math.cos(math.pi - margin), widened,
                          cos - math.sin(math.pi - margin) * margin)
    hot = F.one_hot(target, cos.shape[1]).bool()
    return scale * torch.where(hot, widened, cos)


class SpeakerVerifier(Head):
    decode_options = ("speaker", "threshold")

    def __init__(self, inputs: Mapping[str, Any] | None = None, modality: str = "audio",
                 labels: Sequence[str] | None = None, threshold: float = 0.75,
                 pair_threshold: float = 0.75, adapt: bool = False, margin: float = 0.2,
                 scale: float = 30.0) -> None:
        super().__init__()
        desc = (inputs or {}).get(modality)
        if not desc or "pooled" not in (desc.get("outputs") or ()):
            raise ZooError(f"the speaker-verifier head reads the pooled embedding of a "
                           f"{modality!r} encoder; this model has none (use encoders = "
                           f"{{ {modality} = \"ge2e-speaker\" }})")
        dim = int(desc["dim"])
        self.modality, self.dim = modality, dim
        names = [str(x) for x in (labels or [])]
        if len(set(names)) != len(names):
            raise ZooError("speaker-verifier: enrolled speaker ids (labels) must be distinct")
        self.labels = names or None  # enrolled speakers (None: embeddings only)
        self.margin, self.scale = float(margin), float(scale)
        self.adapter = nn.Linear(dim, dim) if adapt else None
        if self.adapter is not None:  # starts as the identity map of the embedding
            nn.init.zeros_(self.adapter.weight)
            nn.init.zeros_(self.adapter.bias)
        self.centroids = nn.Parameter(torch.zeros(len(names), dim))  # (S, D)
        self.register_buffer("threshold", torch.tensor(float(threshold)))
        self.register_buffer("pair_threshold", torch.tensor(float(pair_threshold)))

    def config(self) -> dict[str, Any]:
        """The captured kwargs, with the enrolled speakers and the thresholds as they are
        now (chosen on eval data during training)."""
        return {**dict(getattr(self, "_zoo_kwargs", {})), "labels": list(self.labels or []),
                "threshold": round(float(self.threshold), 6),
                "pair_threshold": round(float(self.pair_threshold), 6)}

    @property
    def speakers(self) -> list[str]:
        return list(self.labels or [])

    # ---- embeddings ------------------------------------------------------------------
    def embed(self, pooled: torch.Tensor) -> torch.Tensor:
        """(B, D) encoder embeddings -> (B, D) L2-normalised verification embeddings."""
        if self.adapter is not None:
            pooled = pooled + self.adapter(pooled)
        return F.normalize(pooled, dim=1)

    def forward(self, encoded: Any, batch: Any = None) -> torch.Tensor:
        if self.modality not in encoded:
            raise DataError(f"speaker verification needs {self.modality!r} in every input")
        out, index = encoded[self.modality]
        n = batch.size if batch is not None else len(index)
        if len(index) != n:
            raise DataError(f"speaker verification needs {self.modality!r} in every input "
                            f"({n - len(index)} of {n} have none)")
        emb = self.embed(out.pooled)  # (n, D) in the order of index
        return emb.new_zeros(n, self.dim).index_copy(0, index, emb)

    def enrolled(self) -> torch.Tensor:
        return F.normalize(self.centroids, dim=1)  # (S, D)

    # ---- training --------------------------------------------------------------------
    def encode_targets(self, targets: Sequence[Mapping[str, Any]], batch: Any = None
                       ) -> torch.Tensor:
        if not self.labels:
            raise DataError("no speakers are enrolled in this head: train it on utterances "
                            "with a 'speaker' id each (zoo train enrolls them)")
        where = {s: i for i, s in enumerate(self.labels)}
        ids = []
        for t in targets:
            spk = str(t.get("speaker"))
            if spk not in where:
                raise DataError(f"speaker {spk!r} is not enrolled in this head")
            ids.append(where[spk])
        return torch.tensor(ids, dtype=torch.long)

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        cos = outputs @ self.enrolled().T  # (B, S)
        logits = aam_logits(cos, targets.to(cos.device), self.margin, self.scale)
        return F.cross_entropy(logits, targets.to(cos.device))

    # ---- decoding --------------------------------------------------------------------
    def decode(self, outputs: torch.Tensor, batch: Any = None, speaker: Any = None,
               threshold: Any = None) -> list[dict[str, Any]]:
        thr = float(self.threshold) if threshold is None else _number(threshold, "threshold")
        embeddings = outputs.float().cpu()
        if not self.labels:
            if speaker is not None:
                raise DataError("speaker=...: no speakers are enrolled in this model; train "
                                "it on utterances with 'speaker' ids to enroll them")
            return [{"embedding": e.tolist(), "speaker": None, "score": None,
                     "accepted": None, "scores": {}} for e in embeddings]
        claimed = None
        if speaker is not None:
            claimed = str(speaker)
            if claimed not in self.labels:
                raise DataError(f"speaker={claimed!r} is not enrolled; enrolled: "
                                f"{', '.join(self.labels[:20])}")
        cos = embeddings @ self.enrolled().detach().float().cpu().T  # (B, S)
        results = []
        for e, row in zip(embeddings, cos):
            k = self.labels.index(claimed) if claimed is not None else int(row.argmax())
            score = float(row[k])
            results.append({"embedding": e.tolist(), "speaker": self.labels[k],
                            "score": score, "accepted": score >= thr,
                            "scores": {s: float(v) for s, v in zip(self.labels, row)}})
        return results


def _number(value: Any, name: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{name}= must be a number (a cosine in [-1, 1]), not {value!r}"
                        ) from None
    if not -1.0 <= out <= 1.0:
        raise DataError(f"{name}= must be a cosine in [-1, 1], not {out}")
    return out
