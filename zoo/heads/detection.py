"""Anchor-free dense detection (FCOS, Tian et al. 2019) on an FPN over the vision encoder's
multi-scale feature maps.

Every feature-map location predicts class scores, distances to the four box sides (in input
pixels) and a centerness. Training assigns each location to the smallest ground-truth box
that contains it (within ``center_radius`` strides of its centre) when the box's size fits
the level's range. Decoding: score = sqrt(class prob x centerness), threshold, per-class NMS
(torchvision.ops.batched_nms), boxes mapped back to the pixels of the original image.

``text_prompts=True`` makes it open-vocabulary: class scores are dot products between a
per-location embedding and the text encoder's embeddings of the label prompts, so the labels
are text and ``predict(..., labels=[...])`` can name new ones.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from zoo.plugin import DataError, ZooError
from zoo.plugin import Head

__all__ = ["DetectionHead", "FPN"]


class FPN(nn.Module):
    """Feature pyramid: 1x1 laterals, top-down nearest upsampling and add, 3x3 smoothing."""

    def __init__(self, in_channels: Sequence[int], dim: int) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, dim, 1) for c in in_channels)
        self.smooth = nn.ModuleList(nn.Conv2d(dim, dim, 3, padding=1) for _ in in_channels)

    def forward(self, feats: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        lat = [conv(f) for conv, f in zip(self.lateral, feats)]  # [(B, dim, H_i, W_i)]
        for i in range(len(lat) - 2, -1, -1):
            lat[i] = lat[i] + F.interpolate(lat[i + 1], size=lat[i].shape[-2:], mode="nearest")
        return [conv(x) for conv, x in zip(self.smooth, lat)]


def _tower(dim: int, n: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(n):
        layers += [nn.Conv2d(dim, dim, 3, padding=1), nn.GroupNorm(min(32, dim // 4), dim),
                   nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class DetectionHead(Head):
    decode_options = ("score_threshold", "nms_iou", "max_detections", "labels")

    def __init__(self, inputs: Mapping[str, Mapping[str, Any]], labels: Sequence[str] = (),
                 dim: int = 128, num_convs: int = 2, text_prompts: bool = False,
                 prompt_template: str = "a photo of a {}.", score_threshold: float = 0.05,
                 nms_iou: float = 0.6, max_detections: int = 100,
                 center_radius: float = 1.5) -> None:
        super().__init__()
        img = inputs.get("image")
        if img is None or "features" not in img.get("outputs", ()):
            raise ZooError("the detection head needs an image encoder built with features "
                           "(encoders = { image = { name = \"...\", features = true } })")
        dc = img.get("data_config") or {}
        if dc and dc.get("crop_mode") != "squash":
            raise ZooError("a detector's image encoder must resize without cropping, so "
                           "boxes map back to the image: data_config = { crop_mode = "
                           "\"squash\", crop_pct = 1.0 }")
        if not labels:
            raise ZooError("a detection head needs its labels: labels=[...] (or train on a "
                           "COCO file, whose categories become the labels)")
        if text_prompts and "text" not in inputs:
            raise ZooError("text_prompts=true needs a text encoder (encoders = { text = ... })")
        self.labels = [str(x) for x in labels]
        self.active_labels: list[str] | None = None  # open-vocabulary override at predict
        self.dim, self.num_convs, self.text_prompts = dim, num_convs, bool(text_prompts)
        self.prompt_template = plain_template(prompt_template, "prompt_template")
        self.score_threshold = _unit(score_threshold, "score_threshold")
        self.nms_iou = _unit(nms_iou, "nms_iou")
        if isinstance(max_detections, bool) or not isinstance(max_detections, int) \
                or not 1 <= max_detections <= 1000:
            raise ZooError(f"max_detections must be an integer in 1..1000, got "
                           f"{max_detections!r}")
        self.max_detections, self.center_radius = max_detections, center_radius
        self.strides = [int(s) for s in img["feature_strides"]]
        self.input_size = tuple(int(x) for x in (dc.get("input_size") or [3, 0, 0])[1:])
        self.fpn = FPN(img["feature_channels"], dim)
        self.cls_tower, self.reg_tower = _tower(dim, num_convs), _tower(dim, num_convs)
        prior = -math.log((1 - 0.01) / 0.01)  # start every location at p(object) = 0.01
        if self.text_prompts:
            self.cls_embed = nn.Conv2d(dim, int(inputs["text"]["dim"]), 3, padding=1)
            self.logit_scale = nn.Parameter(torch.tensor(math.log(10.0)))
            self.logit_bias = nn.Parameter(torch.tensor(prior))
        else:
            self.cls_logits = nn.Conv2d(dim, len(self.labels), 3, padding=1)
            nn.init.constant_(self.cls_logits.bias, prior)
        self.bbox = nn.Conv2d(dim, 4, 3, padding=1)
        self.ctr = nn.Conv2d(dim, 1, 3, padding=1)
        self.scales = nn.Parameter(torch.ones(len(self.strides)))
        # size ranges per level (FCOS): a box goes to the level whose range holds its max side
        edges = [0.0] + [64.0 * 2 ** i for i in range(len(self.strides) - 1)] + [float("inf")]
        self.ranges = list(zip(edges[:-1], edges[1:]))

    @property
    def prompt_modality(self) -> str | None:
        """Prompted: with ``text_prompts`` the labels are text, embedded by the model's
        text encoder."""
        return "text" if self.text_prompts else None

    # ---- forward --------------------------------------------------------------------
    def _points(self, shapes: Sequence[tuple[int, int]], device: torch.device
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Centres of every location (N, 2) in input pixels, their stride and level (N,)."""
        pts, strides, levels = [], [], []
        for lvl, ((h, w), s) in enumerate(zip(shapes, self.strides)):
            ys, xs = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device),
                                    indexing="ij")
            p = torch.stack([xs.reshape(-1), ys.reshape(-1)], -1).float() * s + s // 2  # (hw, 2)
            pts.append(p)
            strides.append(torch.full((h * w,), float(s), device=device))
            levels.append(torch.full((h * w,), lvl, device=device, dtype=torch.long))
        return torch.cat(pts), torch.cat(strides), torch.cat(levels)

    def class_embeddings(self, text_encoder: Any) -> torch.Tensor:
        labels = self.active_labels or self.labels
        # a plain substitution, never str.format: config.json is untrusted, and a format
        # spec ("{0:>400000000}") or attribute access ("{0.__class__}") must do nothing
        prompts = [self.prompt_template.replace("{}", str(label)) for label in labels]
        device = next(text_encoder.parameters()).device
        tensors = dict(text_encoder.preprocess(prompts))
        tensors.pop("word_ids", None)  # the model's business, not the encoder's forward
        batch = {k: v.to(device) for k, v in tensors.items()}
        return F.normalize(text_encoder(**batch).pooled, dim=-1)  # (C, D_text)

    def forward(self, encoded: Mapping[str, Any], batch: Mapping[str, Any],
                prompt_encoder: Any = None) -> dict[str, Any]:
        if "image" not in encoded or encoded["image"][1].numel() != batch.size:
            raise DataError("detection needs an image in every input")
        out, _ = encoded["image"]
        feats = self.fpn(out.features)
        class_emb = self.class_embeddings(prompt_encoder) if self.text_prompts else None
        cls, reg, ctr = [], [], []
        for lvl, f in enumerate(feats):
            c, r = self.cls_tower(f), self.reg_tower(f)
            if class_emb is not None:
                e = F.normalize(self.cls_embed(c), dim=1)  # (B, D_text, H, W)
                logits = torch.einsum("bdhw,cd->bchw", e, class_emb)
                logits = logits * self.logit_scale.exp() + self.logit_bias
            else:
                logits = self.cls_logits(c)  # (B, C, H, W)
            cls.append(logits.flatten(2).transpose(1, 2))  # (B, HW, C)
            dist = F.relu(self.bbox(r) * self.scales[lvl]) * self.strides[lvl]  # (B, 4, H, W)
            reg.append(dist.flatten(2).transpose(1, 2))  # (B, HW, 4): l, t, r, b in pixels
            ctr.append(self.ctr(r).flatten(1))  # (B, HW)
        points, strides, levels = self._points([f.shape[-2:] for f in feats], feats[0].device)
        h, w = _input_size(out)
        sizes = (out.image_sizes.tolist() if out.image_sizes is not None
                 else [[h, w]] * feats[0].shape[0])  # [(h, w)] of the original images
        return {"cls": torch.cat(cls, 1), "reg": torch.cat(reg, 1), "ctr": torch.cat(ctr, 1),
                "points": points, "strides": strides, "levels": levels, "input_hw": (h, w),
                "image_sizes": sizes}

    # ---- targets and loss -----------------------------------------------------------
    def encode_targets(self, targets: Sequence[Mapping[str, Any]], batch: Any = None,
                       outputs: Mapping[str, Any] | None = None
                       ) -> list[dict[str, Any]]:
        """Boxes (xyxy, original pixels) + label names -> box coordinates as given + label
        indices; :meth:`loss` scales them to input pixels with the sizes in ``outputs``."""
        index = {name: i for i, name in enumerate(self.labels)}
        out = []
        for i, t in enumerate(targets):
            boxes, names = t.get("boxes", []), t.get("labels", [])
            if len(boxes) != len(names):
                raise DataError(f"example {i}: {len(boxes)} boxes but {len(names)} labels")
            try:
                lab = [index[str(n)] for n in names]
            except KeyError as e:
                raise DataError(f"example {i}: label {e.args[0]!r} is not one of the "
                                f"detector's labels {self.labels}") from None
            b = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)  # original pixels
            out.append({"boxes": b, "labels": torch.tensor(lab, dtype=torch.long)})
        return out

    def assign(self, points: torch.Tensor, strides: torch.Tensor, levels: torch.Tensor,
               boxes: torch.Tensor, labels: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """FCOS targets for one image: class index (N,) with -1 for background, l/t/r/b
        distances (N, 4) in pixels and centerness (N,)."""
        n = points.shape[0]
        if boxes.numel() == 0:
            return (torch.full((n,), -1, dtype=torch.long, device=points.device),
                    points.new_zeros(n, 4), points.new_zeros(n))
        x, y = points[:, 0:1], points[:, 1:2]  # (N, 1)
        l, t = x - boxes[:, 0], y - boxes[:, 1]  # (N, G)
        r, b = boxes[:, 2] - x, boxes[:, 3] - y
        ltrb = torch.stack([l, t, r, b], -1)  # (N, G, 4)
        inside = ltrb.min(-1).values > 0
        cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2  # (G,)
        rad = strides[:, None] * self.center_radius  # (N, 1)
        near = ((x - cx).abs() < rad) & ((y - cy).abs() < rad)
        side = ltrb.max(-1).values  # (N, G)
        lo = torch.tensor([self.ranges[i][0] for i in range(len(self.ranges))],
                          device=points.device)[levels][:, None]
        hi = torch.tensor([self.ranges[i][1] for i in range(len(self.ranges))],
                          device=points.device)[levels][:, None]
        fits = (side > lo) & (side <= hi)
        area = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))[None].expand(n, -1)
        area = area.masked_fill(~(inside & near & fits), float("inf"))
        best_area, best = area.min(1)  # (N,)
        cls = labels[best].masked_fill(best_area == float("inf"), -1)
        reg = ltrb[torch.arange(n), best]  # (N, 4)
        lr, tb = reg[:, [0, 2]], reg[:, [1, 3]]
        ctr = torch.sqrt((lr.min(-1).values / lr.max(-1).values.clamp(min=1e-6)).clamp(min=0)
                         * (tb.min(-1).values / tb.max(-1).values.clamp(min=1e-6)).clamp(min=0))
        return cls, reg, ctr * (cls >= 0)

    def loss(self, outputs: Mapping[str, Any], targets: Sequence[Mapping[str, torch.Tensor]]
             ) -> torch.Tensor:
        from torchvision.ops import generalized_box_iou_loss, sigmoid_focal_loss

        H, W = outputs["input_hw"]
        device = outputs["points"].device
        assigned = []
        for t, (h, w) in zip(targets, outputs["image_sizes"]):
            boxes = t["boxes"] * torch.tensor([W / w, H / h, W / w, H / h])  # input pixels
            assigned.append(self.assign(outputs["points"], outputs["strides"],
                                        outputs["levels"], boxes.to(device),
                                        t["labels"].to(device)))
        cls_t, reg_t, ctr_t = zip(*assigned)
        cls_t, reg_t, ctr_t = torch.stack(cls_t), torch.stack(reg_t), torch.stack(ctr_t)
        pos = cls_t >= 0  # (B, N)
        num_pos = max(float(pos.sum()), 1.0)
        onehot = torch.zeros_like(outputs["cls"])
        onehot[pos] = F.one_hot(cls_t[pos], onehot.shape[-1]).to(onehot.dtype)
        loss_cls = sigmoid_focal_loss(outputs["cls"], onehot, reduction="sum") / num_pos
        if not pos.any():
            return loss_cls + 0 * outputs["reg"].sum() + 0 * outputs["ctr"].sum()
        pts = outputs["points"][None].expand_as(outputs["reg"][..., :2])[pos]  # (P, 2)
        pred = _ltrb_to_xyxy(pts, outputs["reg"][pos])
        true = _ltrb_to_xyxy(pts, reg_t[pos])
        w = ctr_t[pos]
        loss_reg = (generalized_box_iou_loss(pred, true, reduction="none") * w).sum() / \
            w.sum().clamp(min=1e-6)
        loss_ctr = F.binary_cross_entropy_with_logits(outputs["ctr"][pos], w,
                                                      reduction="sum") / num_pos
        return loss_cls + loss_reg + loss_ctr

    # ---- decoding -------------------------------------------------------------------
    def decode(self, outputs: Mapping[str, Any], batch: Mapping[str, Any],
               score_threshold: float | None = None, nms_iou: float | None = None,
               max_detections: int | None = None) -> list[dict[str, Any]]:
        from torchvision.ops import batched_nms

        thr = self.score_threshold if score_threshold is None else score_threshold
        iou = self.nms_iou if nms_iou is None else nms_iou
        top = self.max_detections if max_detections is None else max_detections
        labels = self.active_labels or self.labels
        H, W = outputs["input_hw"]
        sizes = outputs["image_sizes"]
        scores_all = torch.sqrt(outputs["cls"].sigmoid() * outputs["ctr"].sigmoid()[..., None])
        results = []
        for i, (h, w) in enumerate(sizes):
            scores = scores_all[i]  # (N, C)
            keep = scores > thr
            loc, cls = keep.nonzero(as_tuple=True)
            s = scores[loc, cls]
            if s.numel() > 1000:
                s, order = s.topk(1000)
                loc, cls = loc[order], cls[order]
            boxes = _ltrb_to_xyxy(outputs["points"][loc], outputs["reg"][i, loc])
            boxes[:, 0::2] = boxes[:, 0::2].clamp(0, W)
            boxes[:, 1::2] = boxes[:, 1::2].clamp(0, H)
            kept = batched_nms(boxes, s, cls, iou)[:top]
            boxes = boxes[kept] * torch.tensor([w / W, h / H, w / W, h / H], device=boxes.device)
            results.append({"boxes": [[round(v, 2) for v in b] for b in boxes.tolist()],
                            "labels": [labels[c] for c in cls[kept].tolist()],
                            "scores": s[kept].tolist()})
        return results

    def check_decode_kwargs(self, kwargs: Mapping[str, Any]) -> None:
        """Names and values (a request's parameters are untrusted): thresholds in [0, 1],
        max_detections an integer in 1..1000, labels a list of strings."""
        super().check_decode_kwargs(kwargs)
        for name in ("score_threshold", "nms_iou"):
            if name in kwargs:
                _unit(kwargs[name], name)
        top = kwargs.get("max_detections", 1)
        if isinstance(top, bool) or not isinstance(top, int) or not 1 <= top <= 1000:
            raise ZooError(f"max_detections must be an integer in 1..1000, got {top!r}")
        labels = kwargs.get("labels", [])
        if not isinstance(labels, list) or len(labels) > 256 or not all(
                isinstance(x, str) and 0 < len(x) <= 200 for x in labels):
            raise ZooError("labels must be a list of up to 256 non-empty strings")
        if "labels" in kwargs and not self.text_prompts:
            raise ZooError("labels=[...] at predict time needs an open-vocabulary detector "
                           "(text_prompts=true); this one has fixed labels")

    def config(self) -> dict[str, Any]:
        return {"labels": list(self.labels), "dim": self.dim, "num_convs": self.num_convs,
                "text_prompts": self.text_prompts, "prompt_template": self.prompt_template,
                "score_threshold": self.score_threshold, "nms_iou": self.nms_iou,
                "max_detections": self.max_detections, "center_radius": self.center_radius}


def plain_template(value: Any, name: str) -> str:
    """A prompt template as configs may hold one: text with exactly one ``{}`` where the
    label goes and no other brace (filled by substitution, never ``str.format``)."""
    if not isinstance(value, str) or len(value) > 200 or value.count("{}") != 1 or \
            value.replace("{}", "").count("{") or value.replace("{}", "").count("}"):
        raise ZooError(f"{name} must be text of at most 200 characters with one '{{}}' for "
                       f"the label and no other braces, got {str(value)[:60]!r}")
    return value


def _unit(value: Any, name: str) -> float:
    """A probability-like setting: a number in [0, 1] (NaN is not)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ZooError(f"{name} must be a number in [0, 1], got {value!r}")
    return float(value)


def _input_size(out: Any) -> tuple[int, int]:
    """(H, W) of the image tensor the encoder saw: declared, or the finest feature map
    times its stride."""
    if out.input_size is not None:
        return int(out.input_size[0]), int(out.input_size[1])
    f, s = out.features[0], out.strides[0]
    return int(f.shape[-2] * s), int(f.shape[-1] * s)


def _ltrb_to_xyxy(points: torch.Tensor, ltrb: torch.Tensor) -> torch.Tensor:
    return torch.stack([points[:, 0] - ltrb[:, 0], points[:, 1] - ltrb[:, 1],
                        points[:, 0] + ltrb[:, 2], points[:, 1] + ltrb[:, 3]], -1)  # (N, 4)
