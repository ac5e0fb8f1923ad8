"""The frozen-feature cache: with every encoder frozen, each distinct input is encoded once
and later epochs (and every evaluation) run only fusion and head.

A cached row keeps, per modality, exactly the :class:`zoo.plugin.EncoderOutput` fields the
encoder gave for that example, so the cache works for any encoder that honours the output
contract; it never reads the tensors an encoder's ``preprocess`` produced.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch

from zoo.base.batch import Batch, ModalityBatch
from zoo.base.encoder import EncoderOutput, scale_choices_of

__all__ = ["apply_scales", "encode_all", "collate_cached", "predict_cached",
           "scale_pooled"]


#: a pooled row at least this wide and at most this dense is kept sparse (a TF-IDF vector of
#: 32,768 n-grams has a few hundred non-zeros: a few KB sparse, 128 KB dense)
SPARSE_MIN_DIM, SPARSE_MAX_DENSITY = 4096, 0.05


def _compact(row: torch.Tensor) -> torch.Tensor:
    """A wide, mostly-zero feature row as a sparse tensor (densified again per batch), else
    a copy of it alone (a row of a batch's tensor would keep the whole batch alive)."""
    if row.dim() == 1 and row.numel() >= SPARSE_MIN_DIM and \
            int(torch.count_nonzero(row)) <= SPARSE_MAX_DENSITY * row.numel():
        return row.to_sparse()
    return row.clone()


def _stack(rows: list[torch.Tensor]) -> torch.Tensor:
    """(B, D) from cached rows, sparse ones written into one zero batch (per-row
    ``to_dense`` took 40 % of a TF-IDF epoch)."""
    if not any(r.is_sparse for r in rows):
        return torch.stack(rows)
    out = torch.zeros(len(rows), rows[0].shape[0], dtype=rows[0].dtype)
    for k, r in enumerate(rows):
        if r.is_sparse:
            out[k, r._indices()[0]] = r._values()  # to_sparse() rows: coalesced
        else:
            out[k] = r
    return out


def _rows(out: EncoderOutput, n: int) -> list[dict[str, Any]]:
    """One dict per example of a batch's encoder output (CPU tensors)."""
    rows: list[dict[str, Any]] = []
    for j in range(n):
        row: dict[str, Any] = {}
        if out.pooled is not None:
            row["pooled"] = _compact(out.pooled[j].cpu())
        if out.sequence is not None:
            k = int(out.mask[j].sum()) if out.mask is not None else out.sequence.shape[1]
            row["sequence"] = out.sequence[j, :k].cpu()
            if out.word_ids is not None:
                row["word_ids"] = out.word_ids[j, :k].cpu()
        if out.features is not None:
            row["features"] = [f[j].cpu() for f in out.features]
            row["strides"] = out.strides
        if out.image_sizes is not None:
            row["image_sizes"] = out.image_sizes[j].cpu()
        if out.input_size is not None:
            row["input_size"] = tuple(out.input_size)
        rows.append(row)
    return rows


def encode_all(model: Any, examples: Sequence[Any], batch_size: int,
               tick: Any = None) -> list[dict[str, Any]]:
    """Per example: modality -> its encoder output row, computed once per distinct input
    (an image paired with several texts is encoded once); texts are encoded sorted by
    length (rows keep the examples' order). ``tick(n)`` is called as examples are done (a
    progress bar's ``update``)."""
    from zoo.registry import modalities

    reg = modalities()
    rows: list[dict[str, Any]] = [dict() for _ in examples]
    model.eval()
    with torch.inference_mode():
        for m in model.encoders:
            groups: dict[Any, list[int]] = {}
            for i, ex in enumerate(examples):
                v = ex.inputs.get(m)
                if v is not None:
                    groups.setdefault(v if isinstance(v, str) else ("id", id(v)), []).append(i)
            keys = list(groups)
            if reg[m].variable_length:  # similar lengths batched together: less padding
                keys.sort(key=lambda k: reg[m].length(examples[groups[k][0]].inputs[m]))
            for start in range(0, len(keys), batch_size):
                chunk = keys[start:start + batch_size]
                batch = model.preprocess([{m: examples[groups[k][0]].inputs[m]} for k in chunk])
                out, _ = model.encode(batch)[m]
                for k, row in zip(chunk, _rows(out, len(chunk))):
                    for i in groups[k]:
                        rows[i][m] = row
                if tick is not None:
                    tick(sum(len(groups[k]) for k in chunk))
    return rows


def _pad(seqs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    t, d = max(s.shape[0] for s in seqs), seqs[0].shape[1]
    seq = torch.zeros(len(seqs), t, d, dtype=seqs[0].dtype)  # (B, T, D)
    mask = torch.zeros(len(seqs), t, dtype=torch.bool)  # (B, T)
    for k, s in enumerate(seqs):
        seq[k, : s.shape[0]], mask[k, : s.shape[0]] = s, True
    return seq, mask


def collate_cached(rows: Sequence[dict[str, Any]], modalities: Sequence[str],
                   device: torch.device, inputs: Sequence[Any] | None = None
                   ) -> tuple[dict[str, Any], Batch]:
    """Cached rows -> (encoded, batch) as ``ZooModel.forward_encoded`` takes them;
    ``inputs``: the rows' raw inputs, for heads that decode into them (word offsets)."""
    encoded = {}
    batch = Batch(size=len(rows), inputs=list(inputs) if inputs is not None else None)
    for m in modalities:
        idx = [i for i, r in enumerate(rows) if m in r]
        if not idx:
            continue
        items = [rows[i][m] for i in idx]
        first = items[0]
        out = EncoderOutput()
        if "pooled" in first:
            out.pooled = _stack([r["pooled"] for r in items]).to(device)
        if "sequence" in first:
            seq, mask = _pad([r["sequence"] for r in items])
            out.sequence, out.mask = seq.to(device), mask.to(device)
        if "word_ids" in first:
            words = torch.full(out.mask.shape, -1, dtype=torch.long)  # (B, T), -1: no word
            for k, r in enumerate(items):
                words[k, : r["word_ids"].shape[0]] = r["word_ids"]
            out.word_ids = words.to(device)
        if "features" in first:
            out.features = [torch.stack([r["features"][lvl] for r in items]).to(device)
                            for lvl in range(len(first["features"]))]
            out.strides = first["strides"]
        if "image_sizes" in first:
            out.image_sizes = torch.stack([r["image_sizes"] for r in items])
        out.input_size = first.get("input_size")
        index = torch.tensor(idx, dtype=torch.long)
        encoded[m] = (out, index.to(device))
        batch.modalities[m] = ModalityBatch(index, word_ids=out.word_ids)
    return encoded, batch


def scale_pooled(rows: list[dict[str, Any]], modality: str, start: int, stop: int,
                 factor: float) -> None:
    """Columns [start, stop) of each cached row's ``modality`` pooled output times
    ``factor``, in place in ``rows`` (examples that share one encoded input are scaled
    once): the cache as the encoder gives it after ``set_scale``."""
    done: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}
    for r in rows:
        old = r.get(modality)
        if old is None or "pooled" not in old:
            continue
        hit = done.get(id(old))
        if hit is None:
            p = old["pooled"]
            if p.is_sparse:
                p = p.coalesce()
                idx, val = p.indices(), p.values().clone()
                val[(idx[0] >= start) & (idx[0] < stop)] *= factor
                q = torch.sparse_coo_tensor(idx, val, p.shape).coalesce()
            else:
                q = p.clone()
                q[start:stop] *= factor
            hit = done[id(old)] = (old, dict(old, pooled=q))  # (old kept: ids stay unique)
        r[modality] = hit[1]


def apply_scales(model: Any, scales: dict[str, dict[str, float]], *row_lists: Any) -> None:
    """Set each encoder's chosen block weights (``{modality: {block: weight}}``) and rescale
    the cached rows to match (a resumed run re-caches at the built weights)."""
    for m, blocks in (scales or {}).items():
        enc = model.encoders[m]
        choices = scale_choices_of(enc)
        for name, weight in blocks.items():
            spec, weight = choices.get(name), float(weight)
            if spec is None or spec["weight"] == weight:
                continue
            start, stop = spec["columns"]
            for rows in row_lists:
                if rows is not None:
                    scale_pooled(rows, m, start, stop, weight / spec["weight"])
            enc.set_scale(name, weight)


def predict_cached(model: Any, rows: Sequence[dict[str, Any]], batch_size: int,
                   inputs: Sequence[Any] | None = None) -> list[dict[str, Any]]:
    """Predictions from cached encoder outputs: only fusion, head and decoding run
    (``inputs``: the rows' raw inputs, which decoding may read)."""
    was = model.training
    model.eval()
    preds: list[dict[str, Any]] = []
    try:
        with torch.inference_mode():
            for start in range(0, len(rows), batch_size):
                part = inputs[start:start + batch_size] if inputs is not None else None
                encoded, batch = collate_cached(rows[start:start + batch_size],
                                                model.modalities, model.device, part)
                preds += model.head.decode(model(batch, encoded=encoded), batch=batch)
    finally:
        model.train(was)
    return preds
