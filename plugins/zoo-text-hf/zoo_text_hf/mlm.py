"""Masked-language modelling (``zoo pretrain --objective mlm``), as BERT: 15 % of the tokens
chosen (whole words when the tokenizer gives offsets), of those 80 % replaced by [MASK],
10 % by a random token, 10 % left as they are; the loss is the cross-entropy of the
original tokens at the chosen positions. Masking is transformers' own
``DataCollatorForLanguageModeling``; the model is ``AutoModelForMaskedLM`` on the encoder's
weights."""
from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Any, Sequence

import torch

from zoo.plugin import Objective, ZooError

from .encoder import _folder, _offline_kwargs

_FACTORY = "zoo_text_hf.encoder:build"
#: what padding adds to each per-token list the collator reads
_PAD = {"special_tokens_mask": 1, "offset_mapping": (0, 0), "attention_mask": 0}


def _quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def _sha256(path: Path) -> str | None:
    if not path.is_file():
        return None
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _from_folder(folder: str, what: str) -> tuple[Any, Any, dict[str, Any]]:
    """(model, tokenizer, loading info) of a transformers folder or Hub id."""
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    try:
        model, info = AutoModelForMaskedLM.from_pretrained(folder, output_loading_info=True,
                                                           **_offline_kwargs())
    except ValueError as e:  # a model type without a masked-LM architecture
        raise ZooError(f"{what} has no masked-LM architecture in transformers "
                       f"({str(e).splitlines()[0][:120]}); mlm needs a BERT-like encoder") from None
    except OSError as e:  # not there (offline, a typo)
        raise ZooError(f"{what}: cannot load {folder!r} ({str(e).splitlines()[0][:160]})"
                       ) from None
    tok = AutoTokenizer.from_pretrained(folder, **_offline_kwargs())
    return model, tok, info


def _load(encoder: dict[str, Any], seed: int
          ) -> tuple[Any, Any, dict[str, Any], list[str], dict[str, Any]]:
    """The masked-LM model and tokenizer for ``encoder`` (zoo's description of it), what it
    started from, notes for the user, and the encoder kwargs a task model should use."""
    from transformers import AutoConfig, AutoModelForMaskedLM, AutoTokenizer

    from zoo.plugin import has_weights, weights_info

    _quiet_transformers()
    name, notes = encoder["name"], []
    if encoder.get("path"):
        folder = Path(encoder["path"])
        cfg = _json(folder / "config.json")
        if cfg is None or "zoo_format" in cfg or "model_type" not in cfg:
            raise ZooError(f"{folder}: not a transformers model folder (no config.json with "
                           f"a model_type); pass a registry encoder name or such a folder")
        model, tok, info = _from_folder(str(folder), f"folder {folder.name}")
        prior = (_json(folder / "zoo_pretrain.json") or {}).get("encoder") or {}
        base = {"weights": None, "sha256": _sha256(folder / "model.safetensors"),
                "base_model": prior.get("base_model"), "license": prior.get("license")}
        kwargs = (_json(folder / "zoo_pretrain.json") or {}).get("encoder_kwargs") or {}
    else:
        if encoder.get("factory") != _FACTORY:
            raise ZooError(f"encoder {name!r} is not a transformers text encoder; mlm "
                           f"pretrains those (minilm-l6, bert-tiny, or a transformers "
                           f"folder / hf-text source)")
        d = encoder.get("defaults") or {}
        origin = encoder.get("weights") or d.get("source")
        if origin:
            model, tok, info = _from_folder(_folder(origin), f"encoder {name!r}")
            w = weights_info(origin) if has_weights(origin) else None
            base = {"weights": origin if w else None, "sha256": w.sha256 if w else None,
                    "base_model": (w.base_model if w else None) or (None if w else origin),
                    "license": w.license if w else None}
        elif d.get("hf_config") and d.get("tokenizer"):
            torch.manual_seed(seed)
            model = AutoModelForMaskedLM.from_config(AutoConfig.for_model(**d["hf_config"]))
            tok = AutoTokenizer.from_pretrained(_folder(d["tokenizer"]), **_offline_kwargs())
            info = {"missing_keys": []}
            base = {"weights": None, "sha256": None, "base_model": None,
                    "initialised": "random"}
            notes.append(f"{name} has no pretrained weights: the encoder and its MLM head "
                         f"start at random (seed {seed})")
        else:
            raise ZooError(f"encoder {name!r} needs a source to pretrain from: pass the "
                           f"transformers folder itself as --encoder")
        kwargs = {k: d[k] for k in ("pooling", "max_length", "normalize") if k in d}
    head = [k for k in info.get("missing_keys") or () if not k.startswith(
        model.base_model_prefix + ".")]
    base.setdefault("initialised", "pretrained")
    base["mlm_head"] = "fresh" if head or base["initialised"] == "random" else "pretrained"
    if head:
        tied = model.get_output_embeddings().weight is model.get_input_embeddings().weight
        notes.append(f"{name}'s checkpoint has no MLM head (an encoder-only checkpoint, as "
                     f"sentence-transformers save them): the head starts fresh"
                     + (", its decoder tied to the word embeddings" if tied else ""))
    if tok.mask_token is None:
        raise ZooError(f"{name}'s tokenizer has no mask token; mlm needs one")
    return model, tok, base, notes, kwargs


def _json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def collator(tokenizer: Any, *, mlm_probability: float, whole_word: bool,
             seed: int | None) -> Any:
    """transformers' MLM collator, BERT's 80/10/10. With whole-word masking, transformers 5
    sets every chosen token to [MASK] (it warns that it does not support random
    replacement there); BERT's whole-word release chose whole words and still applied
    80/10/10 to each of their tokens, which the collator's own ``torch_mask_tokens`` does
    once the two probabilities are set back."""
    from transformers import DataCollatorForLanguageModeling

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        c = DataCollatorForLanguageModeling(tokenizer, mlm=True, whole_word_mask=whole_word,
                                            mlm_probability=mlm_probability, seed=seed)
    c.mask_replace_prob, c.random_replace_prob = 0.8, 0.1
    return c


class MaskedLM(Objective):
    """BERT's masked-language modelling on a transformers text encoder."""

    metric = "perplexity"
    tags = ("fill-mask", "masked-language-modeling", "domain-adaptation")
    pipeline_tag = "fill-mask"
    modality = "text"
    folder_encoder = "hf-text"  # save() writes a transformers folder: hf-text loads it

    def __init__(self, model: Any, tokenizer: Any, *, mlm_probability: float,
                 whole_word: bool, max_length: int, seed: int, base: dict[str, Any],
                 encoder_kwargs: dict[str, Any], notes: list[str]) -> None:
        super().__init__()
        self.model, self.tokenizer = model, tokenizer
        self.mlm_probability, self.max_length = float(mlm_probability), int(max_length)
        self.whole_word = bool(whole_word and tokenizer.is_fast)
        self.notes = list(notes)
        if whole_word and not self.whole_word:
            self.notes.append("whole-word masking needs a fast tokenizer (offsets): masking "
                              "single tokens")
        self.collator = collator(tokenizer, mlm_probability=self.mlm_probability,
                                 whole_word=self.whole_word, seed=seed)
        self._base = {**base, "encoder_class": type(model).__name__}
        self.steps, self.head_warmup_steps = 0, 0  # training steps; head-only ones first
        self.head_warmup = 0.0  # share of the steps that train the head only
        self.head_lr: float | None = None  # the MLM head's own learning rate (None: --lr)
        self.head_init = "checkpoint"  # how the head's transform started
        self.anchor = 0.0  # weight of the sentence anchor (0: none)
        self.teacher: Any = None  # the encoder as it started (frozen), when anchored
        self.encoder_kwargs = {**encoder_kwargs, "max_length": self.max_length}

    def encode(self, values: Sequence[str]) -> list[dict[str, list]]:
        enc = self.tokenizer(list(values), truncation=True, max_length=self.max_length,
                             return_special_tokens_mask=True,
                             return_offsets_mapping=self.whole_word)
        return [{k: enc[k][i] for k in enc} for i in range(len(values))]

    def collate(self, items: Sequence[dict[str, list]], seed: int | None = None
                ) -> dict[str, torch.Tensor]:
        """Pad (right) to the longest item, then let the collator choose and replace."""
        width = max(len(x["input_ids"]) for x in items)
        pad = {**_PAD, "input_ids": self.tokenizer.pad_token_id or 0}
        rows = [{k: list(v) + [pad.get(k, 0)] * (width - len(v)) for k, v in x.items()}
                for x in items]
        c = self.collator if seed is None else collator(
            self.tokenizer, mlm_probability=self.mlm_probability, whole_word=self.whole_word,
            seed=seed)
        return dict(c(rows))

    def _logits_and_labels(self, batch: dict[str, torch.Tensor]
                           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Logits at the masked positions only: the vocabulary projection of every token
        would cost as much as the encoder itself, and only 15 % of them are scored. Also
        the last hidden state (B, T, D) for the sentence anchor (None: another
        architecture's own forward)."""
        labels = batch["labels"]
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        head = getattr(self.model, "cls", None) or getattr(self.model, "lm_head", None)
        chosen = labels != -100  # (B, T)
        if head is None:  # another architecture: its own full forward
            logits = self.model(**inputs).logits  # (B, T, V)
            return logits[chosen], labels[chosen], None
        hidden = self.model.base_model(**inputs).last_hidden_state  # (B, T, D)
        if self.training and self.steps < self.head_warmup_steps:
            hidden = hidden.detach()  # a fresh head's first gradients stay out of the encoder
        return head(hidden[chosen]), labels[chosen], hidden  # (N, V), (N,), (B, T, D)

    def drift(self, batch: dict[str, torch.Tensor], hidden: torch.Tensor) -> torch.Tensor:
        """(B,): 1 - cosine between each text's mean-pooled last hidden state and the
        starting encoder's on the same (masked) input: how far the sentence vectors moved."""
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1)
        self.teacher.eval()
        with torch.no_grad():
            ref = self.teacher(**{k: v for k, v in batch.items() if k != "labels"}
                               ).last_hidden_state
            ref = (ref * mask).sum(1) / mask.sum(1).clamp_min(1)
        return 1 - torch.nn.functional.cosine_similarity(pooled, ref, dim=-1)

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        logits, labels, hidden = self._logits_and_labels(batch)
        self.steps += int(self.training)
        if labels.numel() == 0:  # nothing chosen in this batch: no signal, no NaN
            return logits.sum() * 0.0
        loss = torch.nn.functional.cross_entropy(logits, labels)
        if self.anchor and hidden is not None and hidden.requires_grad:  # the encoder learns
            loss = loss + self.anchor * self.drift(batch, hidden).mean()
        return loss

    @torch.no_grad()
    def evaluate(self, batches: Sequence[dict[str, torch.Tensor]]) -> dict[str, float]:
        """Perplexity: exp of the mean cross-entropy over every masked token."""
        import math

        total, n, drift, texts = 0.0, 0, 0.0, 0
        for b in batches:
            logits, labels, hidden = self._logits_and_labels(b)
            total += float(torch.nn.functional.cross_entropy(logits, labels, reduction="sum"))
            n += int(labels.numel())
            if self.teacher is not None and hidden is not None:
                drift += float(self.drift(b, hidden).sum())
                texts += int(b["input_ids"].shape[0])
        loss = total / max(1, n)
        out = {"perplexity": math.exp(loss), "loss": loss, "masked_tokens": n}
        if texts:  # anchored: how far the sentence vectors moved (mean 1 - cosine)
            out["sentence_drift"] = drift / texts
        return out

    def settings(self) -> dict[str, Any]:
        return {"mlm_probability": self.mlm_probability, "whole_word": self.whole_word,
                "mask_replace_prob": self.collator.mask_replace_prob,
                "random_replace_prob": self.collator.random_replace_prob,
                "max_length": self.max_length,
                "encoder_trained": not getattr(self, "frozen_encoder", False),
                "head_warmup": self.head_warmup, "head_warmup_steps": self.head_warmup_steps,
                "head_lr": self.head_lr, "head_init": self.head_init,
                "anchor": self.anchor,
                "masking": "transformers DataCollatorForLanguageModeling"
                           + (" (whole words from token offsets)" if self.whole_word else "")}

    def plan(self, steps: int) -> None:
        self.head_warmup_steps = round(self.head_warmup * steps)

    def head_parameters(self) -> list[torch.nn.Parameter]:
        """The MLM head's own parameters: its transform (dense + LayerNorm) and decoder
        bias; a decoder tied to the word embeddings is the encoder's, not the head's."""
        encoder = {id(p) for p in self.model.base_model.parameters()}
        return [p for p in self.model.parameters() if id(p) not in encoder]

    def param_groups(self) -> list[dict[str, Any]]:
        """Two groups: the encoder (the word embeddings, so a tied decoder, included) at
        the run's --lr, its schedule starting when the head-only steps end; the MLM head at
        ``head_lr`` from the first step. Both warm up over --warmup of their steps, then
        decay linearly to 0 at the end."""
        head = {id(p) for p in self.head_parameters()}
        return [{"name": "encoder", "params": [p for p in self.parameters() if p.requires_grad
                                               and id(p) not in head],
                 "start": self.head_warmup_steps},
                {"name": "mlm_head", "params": [p for p in self.parameters() if p.requires_grad
                                                and id(p) in head], "lr": self.head_lr}]

    def stats(self, items: Sequence[dict[str, list]]) -> dict[str, Any]:
        return {"examples": len(items), "tokens": sum(len(x["input_ids"]) for x in items)}

    def base(self) -> dict[str, Any]:
        return dict(self._base)

    def save(self, out: Path, record: dict[str, Any]) -> None:
        self.model.save_pretrained(str(out), safe_serialization=True)
        self.tokenizer.save_pretrained(str(out))


#: a fresh MLM head's learning rate beside a pretrained encoder (bench_dapt.py, MiniLM)
FRESH_HEAD_LR = 2e-3
#: the sentence anchor's weight, and the encoder's rate it allows, for a fresh head on a
#: pretrained sentence encoder (bench_dapt.py, MiniLM: unanchored, 2e-4 filled domain words
#: and cost the few-shot classifier 8.9 points; anchored, -0.4 +- 0.7 points, 3 seeds)
ANCHOR, ANCHORED_LR = 10.0, 2e-4


def _init_head(model: Any, how: str) -> None:
    """A fresh head's transform as ``how`` says: "identity" starts its dense layer as the
    identity (so the head first scores each word embedding against the encoder's own
    output, GELU and LayerNorm aside), "random" keeps transformers' N(0, 0.02)."""
    head = getattr(getattr(model, "cls", None), "predictions", None)
    dense = getattr(getattr(head, "transform", None), "dense", None)
    if how == "random" or dense is None or dense.in_features != dense.out_features:
        return
    with torch.no_grad():
        dense.weight.copy_(torch.eye(dense.in_features))
        dense.bias.zero_()


def build_mlm(*, encoder: dict[str, Any], seed: int = 0, mlm_probability: float = 0.15,
              whole_word: bool = True, max_length: int | None = None,
              freeze_encoder: bool = False, head_warmup: float | None = None,
              head_lr: float | None = None, head_init: str | None = None,
              anchor: float | None = None) -> MaskedLM:
    """The ``mlm`` objective's factory: ``encoder`` is zoo's description of the encoder to
    pretrain (a registry text encoder on transformers, or a transformers folder).
    ``freeze_encoder`` trains the MLM head alone: a control that tells how much of a
    perplexity drop a fresh head explains by itself. ``head_warmup``: the share of the
    training steps, first, that train the head only (the encoder's layers get no
    gradient, its learning rate is 0 and its schedule starts when they end); None: 0.5
    when a fresh head sits on pretrained weights (minilm-l6), else 0. Measured
    (bench_dapt.py, MiniLM, 2 epochs): without it, the gradients of a random head cost the
    few-shot classifier 6.5 points of test accuracy; with it, +0.7.
    ``head_lr``: the MLM head's own learning rate (its transform and decoder bias, an
    optimizer group of its own, warm-up then linear decay from the first step); None:
    ``FRESH_HEAD_LR`` for a fresh head on pretrained weights, else the run's --lr. At the
    encoder's 5e-5 a fresh head learns word frequencies only (it filled every mask with
    "the , a an ."). ``head_init`` ("identity" or "random"): how a fresh head's transform
    starts; None: identity for a fresh head on pretrained weights. ``anchor``: the weight
    of a sentence anchor, anchor x (1 - cosine) between each text's mean-pooled last hidden
    state and the starting encoder's (a frozen copy) added to the loss; None: ``ANCHOR`` for
    a fresh head on pretrained weights, which also makes the run's default --lr
    ``ANCHORED_LR``, else 0. Measured (bench_dapt.py, MiniLM, 3 epochs): at 2e-4 without
    it the sentence vectors moved by 0.37 (1 - cosine), the masks were filled with domain
    words and the few-shot classifier lost 8.9 points; with it they moved by 0.024, the
    masks were still filled with domain words and the classifier moved by -0.4 +- 0.7
    points (3 seeds)."""
    if not 0 < float(mlm_probability) < 1:
        raise ZooError(f"--mlm-probability must be between 0 and 1, not {mlm_probability}")
    if head_lr is not None and not 0 < float(head_lr) < 1:
        raise ZooError(f"head_lr must be a learning rate in (0, 1), not {head_lr}")
    if head_init not in (None, "identity", "random"):
        raise ZooError(f"head_init must be identity or random, not {head_init!r}")
    if anchor is not None and (isinstance(anchor, bool) or not isinstance(anchor, (int, float))
                               or not 0 <= float(anchor) <= 1e4):
        raise ZooError(f"anchor must be a weight in [0, 10000] (--option anchor=10), not "
                       f"{anchor!r}")
    model, tok, base, notes, kwargs = _load(encoder, seed)
    limit = int(getattr(model.config, "max_position_embeddings", 512) or 512)
    length = int(max_length or kwargs.get("max_length") or 128)
    if not 8 <= length <= limit:
        raise ZooError(f"--max-length must be between 8 and {limit} (the model's positions), "
                       f"not {length}")
    if freeze_encoder:  # the word embeddings too, and with them a tied decoder
        for p in model.base_model.parameters():
            p.requires_grad_(False)
        notes.append("the encoder is frozen: only the MLM head trains")
    fresh_on_pretrained = (base["mlm_head"], base["initialised"]) == ("fresh", "pretrained")
    if head_warmup is None:  # a fresh head on pretrained weights: the head learns first
        head_warmup = 0.5 if fresh_on_pretrained and not freeze_encoder else 0.0
    if head_lr is None and fresh_on_pretrained:
        head_lr = FRESH_HEAD_LR
    if head_init is None:
        head_init = "identity" if fresh_on_pretrained else "random"
    if base["mlm_head"] == "fresh":
        _init_head(model, head_init)
    if not 0 <= float(head_warmup) <= 1:
        raise ZooError(f"head_warmup must be a share of the steps in [0, 1], not {head_warmup}")
    if head_warmup:
        notes.append(f"the first {float(head_warmup):.0%} of the steps train the MLM head only "
                     f"(--option head_warmup=0 trains everything from the start)")
    obj = MaskedLM(model, tok, mlm_probability=mlm_probability, whole_word=whole_word,
                   max_length=length, seed=seed, base=base, encoder_kwargs=kwargs, notes=notes)
    obj.frozen_encoder, obj.head_warmup = bool(freeze_encoder), float(head_warmup)
    obj.head_lr = None if head_lr is None else float(head_lr)
    obj.head_init = head_init if base["mlm_head"] == "fresh" else "checkpoint"
    if head_lr is not None and base["mlm_head"] == "fresh":
        obj.notes.append(f"the fresh MLM head learns at its own rate, {float(head_lr):g} "
                         f"(--head-lr), its transform starting "
                         + ("as the identity" if head_init == "identity" else "at random"))
    if anchor is None:  # a fresh head on a pretrained sentence encoder: anchored
        anchor = ANCHOR if fresh_on_pretrained else 0.0
    anchor = 0.0 if freeze_encoder else float(anchor)
    if anchor:
        if getattr(model, "cls", None) is None and getattr(model, "lm_head", None) is None:
            raise ZooError("anchor needs a BERT- or RoBERTa-style MLM head (cls or lm_head); "
                           "drop --option anchor for this encoder")
        import copy

        teacher = copy.deepcopy(model.base_model).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        obj.teacher, obj.anchor = teacher, anchor
        if fresh_on_pretrained:  # words relearnt faster, the sentence vectors held
            obj.default_lr = ANCHORED_LR
        obj.notes.append(f"sentence anchor {anchor:g} (--option anchor=0 drops it): the loss "
                         f"adds {anchor:g} x (1 - cosine) between each text's mean-pooled "
                         f"vector and the starting encoder's"
                         + (f"; the encoder's --lr defaults to {ANCHORED_LR:g}"
                            if fresh_on_pretrained else ""))
    return obj
