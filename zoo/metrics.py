"""Thin adapters over the reference implementations: scikit-learn for classification,
pycocotools for COCO mAP, jiwer for WER/CER."""
from __future__ import annotations

import contextlib
import io
from typing import Any, Mapping, Sequence

__all__ = ["classification_metrics", "detection_metrics", "asr_metrics", "retrieval_metrics",
           "calibration_error", "reliability_bins", "reliability_panel"]

ECE_BINS = 15  # Guo et al. (2017) and torchmetrics' default


def reliability_bins(confidences: Sequence[float], correct: Sequence[bool],
                     n_bins: int = ECE_BINS) -> list[tuple[float, float, int]]:
    """Equal-width confidence bins over (0, 1]: (mean confidence, accuracy, count) each,
    empty bins left out (the reliability diagram's bars)."""
    import numpy as np

    conf = np.asarray(confidences, dtype=float)
    ok = np.asarray(correct, dtype=float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    out = []
    for b in range(n_bins):
        sel = idx == b
        if sel.any():
            out.append((float(conf[sel].mean()), float(ok[sel].mean()), int(sel.sum())))
    return out


def reliability_panel(title: str, confidences: Sequence[float], correct: Sequence[bool]
                      ) -> tuple[str, list[tuple[float, float, int]], float]:
    """What ``zoo.plots.plot_reliability`` draws for one set of predictions."""
    return (title, reliability_bins(confidences, correct),
            calibration_error(confidences, correct))


def calibration_error(confidences: Sequence[float], correct: Sequence[bool],
                      n_bins: int = ECE_BINS) -> float:
    """Expected calibration error of top-label confidences: the count-weighted mean gap
    between confidence and accuracy over equal-width bins (the figure torchmetrics'
    ``multiclass_calibration_error(norm="l1")`` gives; tested equal)."""
    bins = reliability_bins(confidences, correct, n_bins)
    n = sum(c for _, _, c in bins)
    return float(sum(c * abs(conf - acc) for conf, acc, c in bins) / n) if n else 0.0


def classification_metrics(y_true: Sequence[Any], y_pred: Sequence[Any],
                           labels: Sequence[str] | None = None) -> dict[str, Any]:
    """``accuracy``, ``f1_macro`` and a ``per_class`` report, as scikit-learn computes them.

    Macro-F1 averages over the union of the true and the predicted labels (scikit-learn's
    ``labels=None``): a class in the eval data that the model never predicts counts, with
    F1 0, instead of vanishing from the average. Multi-label targets (lists) are binarised;
    accuracy is then the exact-set match. ``labels`` (the model's) is accepted for the
    caller's warnings and no longer narrows the average."""
    from sklearn.metrics import accuracy_score, classification_report, f1_score
    from sklearn.preprocessing import MultiLabelBinarizer

    if len(y_true) != len(y_pred):
        raise ValueError("y_true and y_pred differ in length")
    if not y_true:
        return {"accuracy": 0.0, "f1_macro": 0.0}
    multi = any(isinstance(y, (list, tuple, set)) for y in (*y_true, *y_pred))
    if multi:
        as_list = lambda y: [str(v) for v in y] if isinstance(y, (list, tuple, set)) \
            else [str(y)]  # noqa: E731
        mlb = MultiLabelBinarizer()
        mlb.fit([as_list(y) for y in (*y_true, *y_pred)])
        t, p = mlb.transform(map(as_list, y_true)), mlb.transform(map(as_list, y_pred))
        names = list(mlb.classes_)
    else:
        t, p = [str(y) for y in y_true], [str(y) for y in y_pred]
        names = sorted(set(t) | set(p))
    report = classification_report(t, p, labels=None if not multi else range(len(names)),
                                   target_names=names if multi else None,
                                   output_dict=True, zero_division=0)
    per_class = {k: {m: round(float(v), 6) for m, v in r.items()}
                 for k, r in report.items() if k in names}
    return {"accuracy": float(accuracy_score(t, p)),
            "f1_macro": float(f1_score(t, p, average="macro", zero_division=0)),
            "per_class": per_class}


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
