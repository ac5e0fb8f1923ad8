"""A transformers text encoder with mean or CLS pooling, giving pooled + sequence outputs."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch

from zoo.plugin import WORD_IDS, DataError, Encoder, EncoderOutput, ZooError, word_spans


def word_ids(texts: Sequence[str], offsets: torch.Tensor) -> torch.Tensor:
    """(B, T) long: the word (``word_spans``) each token's characters start in; -1 for
    special tokens and padding, whose offsets are empty."""
    import bisect

    out = torch.full(offsets.shape[:2], -1, dtype=torch.long)
    for b, text in enumerate(texts):
        spans = word_spans(text)
        starts = [s for s, _ in spans]
        for t, (s, e) in enumerate(offsets[b].tolist()):
            if e > s:
                w = bisect.bisect_right(starts, s) - 1
                if w >= 0 and s < spans[w][1]:
                    out[b, t] = w
    return out


def _folder(source: str) -> str:
    """A weights tag, a local folder or a Hub id -> something from_pretrained reads."""
    from zoo.plugin import has_weights, weights_path

    return str(weights_path(source)) if has_weights(source) else source


def _offline_kwargs() -> dict[str, Any]:
    from zoo.plugin import offline

    return {"local_files_only": True} if offline() else {}


class HFTextEncoder(Encoder):
    concurrent_forward = True  # forward keeps no state: batches may run side by side
    modality = "text"
    outputs = ("pooled", "sequence")

    def __init__(self, model: Any, tokenizer: Any, *, pooling: str = "mean",
                 max_length: int = 128, normalize: bool = False, source: str | None = None
                 ) -> None:
        super().__init__()
        if pooling not in ("mean", "cls"):
            raise ZooError(f"pooling must be 'mean' or 'cls', got {pooling!r}")
        self.model = model
        self.tokenizer = tokenizer
        self.pooling, self.max_length, self.normalize = pooling, int(max_length), normalize
        self.source = source
        self.dim = int(model.config.hidden_size)

    def preprocess(self, values: Sequence[Any]) -> dict[str, torch.Tensor]:
        for v in values:
            if not isinstance(v, str):
                raise DataError(f"text input must be a string, got {type(v).__name__}")
        fast = bool(getattr(self.tokenizer, "is_fast", False))
        enc = dict(self.tokenizer(list(values), padding=True, truncation=True,
                                  max_length=self.max_length, return_tensors="pt",
                                  return_offsets_mapping=fast))
        offsets = enc.pop("offset_mapping", None)
        if offsets is not None:  # each token's word: per-word tasks answer in words
            enc[WORD_IDS] = word_ids(values, offsets)
        return enc

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                **extra: torch.Tensor) -> EncoderOutput:
        seq = self.model(input_ids=input_ids, attention_mask=attention_mask,
                         **extra).last_hidden_state  # (B, T, D)
        mask = attention_mask.bool()  # (B, T)
        if self.pooling == "cls":
            pooled = seq[:, 0]  # (B, D)
        else:
            w = mask.unsqueeze(-1).to(seq.dtype)  # (B, T, 1)
            pooled = (seq * w).sum(1) / w.sum(1).clamp(min=1e-9)  # (B, D)
        if self.normalize:
            pooled = torch.nn.functional.normalize(pooled, dim=-1)
        return EncoderOutput(pooled=pooled, sequence=seq, mask=mask)

    def config(self) -> dict[str, Any]:
        cfg = self.model.config.to_dict()
        for k in ("_name_or_path", "transformers_version", "architectures", "dtype",
                  "torch_dtype"):
            cfg.pop(k, None)
        source = self.source
        if isinstance(source, str) and (Path(source).is_absolute() or Path(source).is_dir()):
            source = Path(source).name  # a local folder by name: a published config.json
            # never says where it lay (a saved model reads its own preprocessor folder)
        return {"hf_config": cfg, "pooling": self.pooling, "max_length": self.max_length,
                "normalize": self.normalize, "source": source}

    def preprocessor_config(self) -> dict[str, Any]:
        return {"tokenizer": type(self.tokenizer).__name__, "max_length": self.max_length,
                "pooling": self.pooling, "lowercase": bool(getattr(self.tokenizer,
                                                                   "do_lower_case", False))}

    def save_assets(self, directory: Path) -> None:
        super().save_assets(directory)
        self.tokenizer.save_pretrained(str(directory))


def build(*, pretrained: bool = False, weights: str | None = None,
          assets_dir: str | None = None, source: str | None = None,
          tokenizer: str | None = None, hf_config: dict | None = None, pooling: str = "mean",
          max_length: int = 128, normalize: bool = False) -> HFTextEncoder:
    """The factory behind every text encoder of this plugin.

    - loading a saved model: ``assets_dir`` holds the tokenizer, ``hf_config`` the
      architecture (weights come from the model's safetensors);
    - ``pretrained``: weights and tokenizer from ``weights`` (a tag) or ``source`` (a tag, a
      local folder or a Hub id);
    - otherwise: architecture from ``hf_config`` (or ``source``'s config), random weights,
      tokenizer from ``tokenizer`` (or ``source``).
    """
    from transformers import AutoConfig, AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    if assets_dir is not None:
        if not hf_config:
            raise ZooError("a saved text encoder needs 'hf_config' in config.json")
        vocab = ("tokenizer.json", "vocab.txt", "spiece.model", "sentencepiece.bpe.model",
                 "vocab.json")
        if not any((Path(assets_dir) / f).is_file() for f in vocab):
            raise ZooError(f"{Path(assets_dir).name}: no tokenizer vocabulary (tokenizer.json or "
                           f"vocab.txt) in preprocessor/{Path(assets_dir).name}; the model folder "
                           f"is incomplete: download or save it again")
        tok = AutoTokenizer.from_pretrained(assets_dir, local_files_only=True)
        cfg = AutoConfig.for_model(**hf_config)
        model = AutoModel.from_config(cfg)
        return HFTextEncoder(model, tok, pooling=pooling, max_length=max_length,
                             normalize=normalize, source=source)
    origin = weights if pretrained and weights else source
    if pretrained:
        if not origin:
            raise ZooError("hf-text needs source='org/name' or a local folder to load weights")
        folder = _folder(origin)
        model = AutoModel.from_pretrained(folder, **_offline_kwargs())
        tok = AutoTokenizer.from_pretrained(folder, **_offline_kwargs())
        return HFTextEncoder(model, tok, pooling=pooling, max_length=max_length,
                             normalize=normalize, source=origin)
    tok_source = tokenizer or source
    if not tok_source:
        raise ZooError("this text encoder needs a tokenizer: pass source='org/name' (or a "
                       "local folder), or tokenizer=...")
    tok = AutoTokenizer.from_pretrained(_folder(tok_source), **_offline_kwargs())
    if hf_config:
        cfg = AutoConfig.for_model(**hf_config)
    elif source:
        cfg = AutoConfig.from_pretrained(_folder(source), **_offline_kwargs())
    else:
        raise ZooError("pass hf_config={...} or source=... to build a text encoder")
    model = AutoModel.from_config(cfg)
    return HFTextEncoder(model, tok, pooling=pooling, max_length=max_length,
                         normalize=normalize, source=source)
