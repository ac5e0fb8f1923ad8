"""CTC speech recognition head: a linear layer over the audio encoder's sequence.

The vocabulary (characters; index 0 is the CTC blank) is stored in config.json. Decoding is
chosen at predict time: ``decoder="greedy"`` (best path, repeats collapsed, blanks removed)
or ``decoder="beam"`` (torchaudio's flashlight ``ctc_decoder``), optionally with a lexicon
and a KenLM n-gram language model (shallow fusion: ``lm_weight``, ``word_score``).
"""
from __future__ import annotations

import re
from typing import Any, Mapping, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from zoo.plugin import DataError, ZooError
from zoo.plugin import Head

__all__ = ["CTCHead", "normalize_text", "DEFAULT_VOCABULARY"]

#: lower-case letters, space and apostrophe: what English read speech needs
DEFAULT_VOCABULARY = " abcdefghijklmnopqrstuvwxyz'"
_BLANK, _SIL = "<blank>", "|"
_DECODE_KWARGS = {"decoder", "beam_size", "lexicon", "lm", "lm_weight", "word_score",
                  "beam_threshold"}


def normalize_text(text: str, vocabulary: str = DEFAULT_VOCABULARY) -> str:
    """Lower-case; hyphens and slashes become spaces; characters outside the vocabulary
    are dropped; runs of spaces collapse. Applied to training targets and to references."""
    out = []
    for ch in text.lower():
        if ch in vocabulary:
            out.append(ch)
        elif ch in "-_/\n\t":
            out.append(" ")
    return re.sub(r" +", " ", "".join(out)).strip()


class CTCHead(Head):
    def __init__(self, inputs: Mapping[str, Mapping[str, Any]],
                 vocabulary: str | Sequence[str] = DEFAULT_VOCABULARY,
                 dropout: float = 0.1) -> None:
        super().__init__()
        if "audio" not in inputs:
            raise ZooError("the CTC head needs an audio encoder (encoders = { audio = ... })")
        if "sequence" not in inputs["audio"].get("outputs", ()):
            raise ZooError("the CTC head needs an audio encoder that gives a sequence")
        vocab = "".join(vocabulary)
        if len(set(vocab)) != len(vocab) or not vocab:
            raise ZooError("the ASR vocabulary must be distinct, non-empty characters")
        if _SIL in vocab:
            raise ZooError(f"the ASR vocabulary may not contain {_SIL!r} (the word separator)")
        self.vocabulary, self.dropout = vocab, dropout
        self.proj = nn.Sequential(nn.Dropout(dropout),
                                  nn.Linear(int(inputs["audio"]["dim"]), len(vocab) + 1))
        self._index = {c: i + 1 for i, c in enumerate(vocab)}  # 0 is the blank
        self._beam_cache: dict[tuple, Any] = {}

    @property
    def labels(self) -> None:  # not a classifier
        return None

    def forward(self, encoded: Mapping[str, Any], batch: Mapping[str, Any]) -> dict[str, Any]:
        if "audio" not in encoded or encoded["audio"][1].numel() != batch.size:
            raise DataError("speech recognition needs audio in every input")
        out, _ = encoded["audio"]
        logits = self.proj(out.sequence)  # (B, T, V + 1)
        return {"log_probs": logits.log_softmax(-1), "lengths": out.mask.sum(1)}

    # ---- training -------------------------------------------------------------------
    def encode_targets(self, targets: Sequence[Mapping[str, Any]], batch: Any = None
                       ) -> dict[str, torch.Tensor]:
        ids, lengths = [], []
        for i, t in enumerate(targets):
            text = t.get("transcript") if isinstance(t, Mapping) else t
            if not isinstance(text, str):
                raise DataError(f"example {i}: ASR needs a 'transcript' string")
            norm = normalize_text(text, self.vocabulary)
            if not norm:
                raise DataError(f"example {i}: transcript {text!r} has no character of the "
                                f"vocabulary")
            ids += [self._index[c] for c in norm]
            lengths.append(len(norm))
        return {"targets": torch.tensor(ids, dtype=torch.long),
                "target_lengths": torch.tensor(lengths, dtype=torch.long)}

    def loss(self, outputs: Mapping[str, Any], targets: Mapping[str, torch.Tensor]
             ) -> torch.Tensor:
        lp = outputs["log_probs"].transpose(0, 1).float()  # (T, B, V + 1), as ctc_loss wants
        return F.ctc_loss(lp, targets["targets"], outputs["lengths"],
                          targets["target_lengths"], blank=0, reduction="mean",
                          zero_infinity=True)

    # ---- decoding -------------------------------------------------------------------
    def check_decode_kwargs(self, kwargs: Mapping[str, Any]) -> None:
        bad = set(kwargs) - _DECODE_KWARGS
        if bad:
            raise ZooError(f"unknown ASR decoding option(s) {sorted(bad)} (use "
                           f"{', '.join(sorted(_DECODE_KWARGS))})")
        if kwargs.get("decoder", "greedy") not in ("greedy", "beam"):
            raise ZooError("decoder must be 'greedy' or 'beam'")

    def greedy(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[str]:
        best = log_probs.argmax(-1)  # (B, T)
        texts = []
        for row, n in zip(best.tolist(), lengths.tolist()):
            chars, prev = [], 0
            for k in row[:n]:
                if k != prev and k != 0:
                    chars.append(self.vocabulary[k - 1])
                prev = k
            texts.append(re.sub(r" +", " ", "".join(chars)).strip())
        return texts

    def _beam_decoder(self, beam_size: int, lexicon: str | None, lm: str | None,
                      lm_weight: float, word_score: float, beam_threshold: float) -> Any:
        key = (beam_size, lexicon, lm, lm_weight, word_score, beam_threshold)
        if key not in self._beam_cache:
            try:
                from torchaudio.models.decoder import ctc_decoder
            except ImportError as e:
                raise ZooError(f"beam search needs torchaudio and flashlight-text: "
                               f"pip install flashlight-text ({e})") from None
            tokens = [_BLANK] + [_SIL if c == " " else c for c in self.vocabulary]
            if _SIL not in tokens:
                tokens.append(_SIL)
            self._beam_cache[key] = ctc_decoder(
                lexicon=lexicon, tokens=tokens, lm=lm, nbest=1, beam_size=beam_size,
                beam_threshold=beam_threshold, lm_weight=lm_weight, word_score=word_score,
                blank_token=_BLANK, sil_token=_SIL, unk_word="<unk>")
        return self._beam_cache[key]

    def beam(self, log_probs: torch.Tensor, lengths: torch.Tensor, *, beam_size: int = 32,
             lexicon: str | None = None, lm: str | None = None, lm_weight: float = 2.0,
             word_score: float = 0.0, beam_threshold: float = 50.0) -> list[str]:
        dec = self._beam_decoder(beam_size, lexicon, lm, lm_weight, word_score, beam_threshold)
        emissions = log_probs.detach().float().cpu().contiguous()  # (B, T, V + 1)
        if " " not in self.vocabulary:  # the separator token was appended: a column for it
            emissions = torch.cat([emissions, emissions.new_full(emissions.shape[:-1] + (1,),
                                                                 -1e4)], dim=-1)
        hyps = dec(emissions, lengths.to(torch.int32).cpu())
        texts = []
        for h in hyps:
            if not h:
                texts.append("")
                continue
            best = h[0]
            if lexicon:
                texts.append(" ".join(best.words))
            else:
                toks = dec.idxs_to_tokens(best.tokens)
                text = "".join(" " if t == _SIL else t for t in toks if t != _BLANK)
                texts.append(re.sub(r" +", " ", text).strip())
        return texts

    def decode(self, outputs: Mapping[str, Any], batch: Any = None, decoder: str = "greedy",
               **beam_kwargs: Any) -> list[dict[str, str]]:
        lp, lengths = outputs["log_probs"], outputs["lengths"]
        if decoder == "beam":
            texts = self.beam(lp, lengths, **beam_kwargs)
        else:
            texts = self.greedy(lp, lengths)
        return [{"text": t} for t in texts]

    def config(self) -> dict[str, Any]:
        return {"vocabulary": self.vocabulary, "dropout": self.dropout}
