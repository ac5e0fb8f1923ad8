"""Thin adapters over the reference implementations: pycocotools for COCO mAP, jiwer for
WER/CER; accuracy and macro-F1 computed plainly (they need no library)."""
from __future__ import annotations

import contextlib
import io
from typing import Any, Mapping, Sequence

__all__ = ["classification_metrics", "detection_metrics", "asr_metrics", "retrieval_metrics"]


def classification_metrics(y_true: Sequence[Any], y_pred: Sequence[Any],
                           labels: Sequence[str]) -> dict[str, float]:
    """``accuracy`` and ``f1_macro`` (mean of per-label F1 over ``labels``). Multi-label
    targets (lists) count an example correct when the predicted set equals the true set."""
    if len(y_true) != len(y_pred):
        raise ValueError("y_true and y_pred differ in length")
    if not y_true:
        return {"accuracy": 0.0, "f1_macro": 0.0}
    as_set = lambda y: set(y) if isinstance(y, (list, tuple, set)) else {y}  # noqa: E731
    correct = sum(as_set(t) == as_set(p) for t, p in zip(y_true, y_pred))
    f1s = []
    for label in labels:
        tp = sum(label in as_set(t) and label in as_set(p) for t, p in zip(y_true, y_pred))
        fp = sum(label not in as_set(t) and label in as_set(p) for t, p in zip(y_true, y_pred))
        fn = sum(label in as_set(t) and label not in as_set(p) for t, p in zip(y_true, y_pred))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    present = [f for f, lab in zip(f1s, labels)
               if any(lab in as_set(t) for t in y_true) or any(lab in as_set(p) for p in y_pred)]
    return {"accuracy": correct / len(y_true),
            "f1_macro": sum(present) / len(present) if present else 0.0}


def detection_metrics(targets: Sequence[Mapping[str, Any]],
                      predictions: Sequence[Mapping[str, Any]],
                      categories: Sequence[str]) -> dict[str, float]:
    """COCO bbox mAP@[.5:.95] (``map``), mAP@0.5 (``map_50``) and mAP@0.75 (``map_75``)
    exactly as pycocotools' COCOeval computes them. Boxes are xyxy pixels."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    cat_id = {c: i + 1 for i, c in enumerate(categories)}
    images, anns, dets = [], [], []
    for img_id, (t, p) in enumerate(zip(targets, predictions), 1):
        images.append({"id": img_id})
        for box, label in zip(t["boxes"], t["labels"]):
            x1, y1, x2, y2 = box
            anns.append({"id": len(anns) + 1, "image_id": img_id, "category_id": cat_id[label],
                         "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1),
                         "iscrowd": 0})
        for box, label, score in zip(p["boxes"], p["labels"], p["scores"]):
            if label not in cat_id:
                continue
            x1, y1, x2, y2 = box
            dets.append({"image_id": img_id, "category_id": cat_id[label],
                         "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(score)})
    if not anns or not dets:
        return {"map": 0.0, "map_50": 0.0, "map_75": 0.0}
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": images, "annotations": anns,
                      "categories": [{"id": i, "name": c} for c, i in cat_id.items()]}
        gt.createIndex()
        dt = gt.loadRes(dets)
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    clean = lambda v: max(float(v), 0.0)  # noqa: E731  (-1 means "no such objects")
    return {"map": clean(ev.stats[0]), "map_50": clean(ev.stats[1]),
            "map_75": clean(ev.stats[2])}


def asr_metrics(references: Sequence[str], hypotheses: Sequence[str]) -> dict[str, float]:
    """Corpus ``wer`` and ``cer`` by jiwer (references should be normalised text)."""
    import jiwer

    refs = [r if r.strip() else "<empty>" for r in references]
    hyps = list(hypotheses)
    return {"wer": float(jiwer.wer(refs, hyps)), "cer": float(jiwer.cer(refs, hyps))}


def retrieval_metrics(emb: dict[str, Any], keys: dict[str, Sequence[Any]]) -> dict[str, float]:
    """Recall@1/5 in both directions between two modalities' embeddings of the same pairs
    (row i of each is pair i). A hit is any retrieved item whose content equals the true
    one (two pairs may share a caption). ``recall_at_1`` is the mean of both directions."""
    import torch

    a, b = sorted(emb)
    ea, eb = (torch.nn.functional.normalize(torch.as_tensor(emb[m], dtype=torch.float32), dim=-1)
              for m in (a, b))
    sims = ea @ eb.T  # (N, N)
    out: dict[str, float] = {}
    for src, dst, s in ((a, b, sims), (b, a, sims.T)):
        want = list(keys[dst])
        top = s.topk(min(5, s.shape[1]), dim=1).indices.tolist()
        for k in (1, 5):
            hits = sum(any(want[j] == want[i] for j in row[:k]) for i, row in enumerate(top))
            out[f"{src}_to_{dst}_r{k}"] = hits / len(top)
    out["recall_at_1"] = (out[f"{a}_to_{b}_r1"] + out[f"{b}_to_{a}_r1"]) / 2
    out["recall_at_5"] = (out[f"{a}_to_{b}_r5"] + out[f"{b}_to_{a}_r5"]) / 2
    return out
