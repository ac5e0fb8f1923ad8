"""Semantic segmentation: scikit-learn digits pasted on crops of real photographs
(scikit-image's chelsea, coffee, rocket, astronaut, ...) with exact masks (10 digit classes
+ background; the anti-aliased rim of each digit is 255, ignored). zoo's effnet-lite0-seg
(Semantic-FPN head on pretrained EfficientNet-Lite0 feature maps, strides 4-32) against the
peer a user would write by hand: the same pretrained EfficientNet-Lite0 through plain timm
(``features_only``) with torchvision's LR-ASPP head and a plain PyTorch loop (AdamW, cosine,
cross-entropy ignoring 255, the best epoch on the same validation split). Same images, input
size, epochs, batch size and learning rate; both keep the pretrained encoder frozen by
default (``--finetune``: both fine-tune it). mIoU and per-class IoU by the same torchmetrics
code on held-out images whose digits come from held-out scans; wall-clock time of training.

    .venv/bin/python bench/bench_segment.py [--train 800 --epochs 15 --finetune]
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from _common import WORK, Timer, report

import zoo

LABELS = ["background", *[str(d) for d in range(10)]]
PHOTOS = ("chelsea", "coffee", "rocket", "astronaut", "immunohistochemistry",
          "hubble_deep_field", "retina", "camera", "brick", "grass", "gravel")


def _photos() -> list[np.ndarray]:
    from skimage import data

    out = []
    for name in PHOTOS:
        a = getattr(data, name)()
        out.append(np.stack([a] * 3, -1) if a.ndim == 2 else a[..., :3])
    return out


def make_split(out: Path, n: int, seed: int, pool: list[int], size: int = 128) -> Path:
    """``n`` images: a random square crop of a photo resized to ``size``, with 1-3 digits
    (24-56 px, no overlap, a random colour, blended by the digit's intensity); the mask is
    the digit's class where its intensity is >= 0.5, 255 on its rim (0.2-0.5)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    rng = np.random.default_rng(seed)
    digits = load_digits()
    photos = _photos()
    (out / "img").mkdir(parents=True, exist_ok=True)
    (out / "mask").mkdir(exist_ok=True)
    lines = []
    for k in range(n):
        photo = photos[int(rng.integers(len(photos)))]
        h, w = photo.shape[:2]
        c = int(rng.integers(size, min(h, w) + 1))
        y, x = int(rng.integers(0, h - c + 1)), int(rng.integers(0, w - c + 1))
        img = np.asarray(Image.fromarray(photo[y:y + c, x:x + c]).resize(
            (size, size), Image.BILINEAR), dtype=np.float32)
        mask = np.zeros((size, size), np.uint8)
        placed: list[tuple[int, int, int]] = []
        for _ in range(int(rng.integers(1, 4))):
            for _try in range(30):
                s = int(rng.integers(24, 57))
                px, py = int(rng.integers(0, size - s)), int(rng.integers(0, size - s))
                if all(px + s <= qx or qx + q <= px or py + s <= qy or qy + q <= py
                       for qx, qy, q in placed):
                    break
            else:
                continue
            placed.append((px, py, s))
            i = pool[int(rng.integers(len(pool)))]
            alpha = np.asarray(Image.fromarray((digits.images[i] / 16 * 255).astype(np.uint8))
                               .resize((s, s), Image.BILINEAR), dtype=np.float32) / 255
            colour = rng.integers(0, 256, 3).astype(np.float32)
            patch = img[py:py + s, px:px + s]
            img[py:py + s, px:px + s] = patch * (1 - alpha[..., None]) + colour * alpha[..., None]
            m = mask[py:py + s, px:px + s]
            m[alpha >= 0.5] = int(digits.target[i]) + 1
            m[(alpha >= 0.2) & (alpha < 0.5)] = 255
        Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(out / "img" / f"{k:05d}.png")
        Image.fromarray(mask).save(out / "mask" / f"{k:05d}.png")
        lines.append({"image": f"img/{k:05d}.png", "mask": f"mask/{k:05d}.png",
                      "labels": LABELS})
    path = out / "data.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def _read(path: Path) -> list[tuple[str, str]]:
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    return [(str(path.parent / r["image"]), str(path.parent / r["mask"])) for r in rows]


def _score(pairs: list[tuple[str, str]], masks: list[np.ndarray]) -> dict[str, float]:
    """The segmentation task's own metrics (torchmetrics) on predicted index masks."""
    from zoo_vision_segment.masks import mask_to_base64

    from zoo.plugin import Example
    from zoo.registry import get_task

    examples = [Example(i + 1, {"image": im}, {"mask": m}) for i, (im, m) in enumerate(pairs)]
    return get_task("segmentation").metrics(SimpleNamespace(labels=LABELS), examples,
                                            [{"mask": mask_to_base64(p)} for p in masks])


class Peer:
    """Plain timm + torchvision: EfficientNet-Lite0 feature maps (strides 8 and 32) into
    torchvision's LRASPPHead, logits upsampled to the input size."""

    def __init__(self, size: int, finetune: bool) -> None:
        import timm
        import torch
        from torchvision.models.segmentation.lraspp import LRASPPHead

        from zoo.plugin import load_weights

        full = timm.create_model("tf_efficientnet_lite0")
        load_weights(full, "efficientnet-lite0.in1k")  # the same ImageNet weights as zoo's
        self.backbone = timm.create_model("tf_efficientnet_lite0", features_only=True,
                                          out_indices=(2, 4))
        self.backbone.load_state_dict(full.state_dict(), strict=False)
        ch = self.backbone.feature_info.channels()
        self.head = LRASPPHead(ch[0], ch[1], len(LABELS), 128)
        self.finetune, self.size = finetune, size
        self.backbone.requires_grad_(finetune)
        cfg = timm.data.resolve_data_config({}, model=full)
        self.mean = torch.tensor(cfg["mean"]).view(1, 3, 1, 1)
        self.std = torch.tensor(cfg["std"]).view(1, 3, 1, 1)

    def params(self) -> list:
        return [*self.head.parameters(), *(self.backbone.parameters() if self.finetune else [])]

    def logits(self, x):
        import torch
        from torch.nn import functional as F

        with torch.set_grad_enabled(self.finetune and self.backbone.training):
            low, high = self.backbone((x - self.mean) / self.std)
        out = self.head({"low": low, "high": high})
        return F.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=False)

    def train(self, mode: bool) -> None:
        self.backbone.train(mode and self.finetune)
        self.head.train(mode)


def _tensors(pairs: list[tuple[str, str]]):
    import torch
    from PIL import Image

    x = torch.stack([torch.from_numpy(np.asarray(Image.open(i).convert("RGB"), dtype=np.float32)
                                      / 255).permute(2, 0, 1) for i, _ in pairs])
    y = torch.stack([torch.from_numpy(np.asarray(Image.open(m), dtype=np.int64))
                     for _, m in pairs])
    return x, y  # (N, 3, H, W), (N, H, W)


def _predict(peer: Peer, x) -> list[np.ndarray]:
    import torch

    peer.train(False)
    masks: list[np.ndarray] = []
    with torch.no_grad():
        for i in range(0, len(x), 64):
            masks += list(peer.logits(x[i:i + 64]).argmax(1).numpy().astype(np.uint8))
    return masks


def run_peer(train: Path, val: Path, args: argparse.Namespace) -> tuple[Peer, float, float]:
    """The plain loop: (the best epoch's model, its val mIoU, seconds)."""
    import copy

    import torch
    from torch.nn import functional as F

    torch.manual_seed(0)
    peer = Peer(128, args.finetune)
    x, y = _tensors(_read(train))
    vpairs = _read(val)
    vx = _tensors(vpairs)[0]
    opt = torch.optim.AdamW(peer.params(), lr=args.lr, weight_decay=0.01)
    steps = args.epochs * -(-len(x) // args.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps,
                                                pct_start=0.05, anneal_strategy="cos")
    best, best_state = -1.0, None
    with Timer() as t:
        for epoch in range(args.epochs):
            peer.train(True)
            order = torch.randperm(len(x))
            for i in range(0, len(x), args.batch_size):
                idx = order[i:i + args.batch_size]
                loss = F.cross_entropy(peer.logits(x[idx]), y[idx], ignore_index=255)
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(peer.params(), 1.0)
                opt.step()
                sched.step()
            miou = _score(vpairs, _predict(peer, vx))["miou"]
            print(f"peer epoch {epoch + 1}: loss {loss.item():.3f}, val mIoU {miou:.4f}",
                  flush=True)
            if miou > best:
                best = miou
                best_state = copy.deepcopy((peer.head.state_dict(),
                                            peer.backbone.state_dict()))
    peer.head.load_state_dict(best_state[0])
    peer.backbone.load_state_dict(best_state[1])
    return peer, best, t.s


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", type=int, default=800)
    ap.add_argument("--val", type=int, default=100)
    ap.add_argument("--test", type=int, default=200)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--finetune", action="store_true", help="fine-tune the encoder (both)")
    args = ap.parse_args()
    w = WORK / "segment"
    pool = list(range(1797))  # digit scans: train / val / test draw from disjoint parts
    train = make_split(w / "train", args.train, 1, pool[:1200])
    val = make_split(w / "val", args.val, 2, pool[1200:1500])
    test = make_split(w / "test", args.test, 3, pool[1500:])
    model = zoo.create_model("effnet-lite0-seg", pretrained=True, encoders={"image": {
        "name": "efficientnet-lite0", "features": True, "out_indices": [1, 2, 3, 4],
        "data_config": {"input_size": [3, 128, 128], "crop_mode": "squash",
                        "crop_pct": 1.0}}})
    out = w / "zoo-run"
    with Timer() as tz:
        s = zoo.train(model, train, val, out, epochs=args.epochs, lr=args.lr,
                      batch_size=args.batch_size, freeze="none" if args.finetune else "all",
                      encoder_lr=args.lr / 10, progress=False)
    mz = zoo.evaluate(out, test)
    peer, peer_val, tp = run_peer(train, val, args)
    tpairs = _read(test)
    mp = _score(tpairs, _predict(peer, _tensors(tpairs)[0]))
    _print(s, mz, tz.s, peer_val, mp, tp, args)


def _print(s: dict, mz: dict, tz: float, peer_val: float, mp: dict, tp: float,
           args: argparse.Namespace) -> None:
    per = lambda m: {k[4:]: round(v, 3) for k, v in m.items() if k.startswith("iou_")}
    print(f"\nheld-out test, {mz['n']} images, 11 classes, "
          f"{'fine-tuned' if args.finetune else 'frozen'} EfficientNet-Lite0, {args.epochs} "
          f"epochs on {args.train} images:")
    print(f"  zoo effnet-lite0-seg (Semantic FPN): val mIoU {s['best']['miou']:.4f}, test mIoU "
          f"{mz['miou']:.4f}, pixel acc {mz['pixel_accuracy']:.4f}, train {tz:.0f}s")
    print(f"  plain timm + torchvision LR-ASPP:    val mIoU {peer_val:.4f}, test mIoU "
          f"{mp['miou']:.4f}, pixel acc {mp['pixel_accuracy']:.4f}, train {tp:.0f}s")
    print(f"  mIoU zoo - peer: {mz['miou'] - mp['miou']:+.4f}; time zoo / peer: {tz / tp:.2f}")
    print(f"  per-class IoU zoo:  {per(mz)}\n  per-class IoU peer: {per(mp)}")
    digits = [v for k, v in mz.items() if k.startswith("iou_") and k != "iou_background"]
    report("segment", {"miou_zoo": round(mz["miou"], 4), "miou_peer": round(mp["miou"], 4),
                       "median_digit_iou_zoo": round(statistics.median(digits), 4),
                       "train_s_zoo": round(tz), "train_s_peer": round(tp),
                       "time_ratio": round(tz / tp, 3), "epochs": args.epochs,
                       "n_train": args.train, "finetune": args.finetune})


if __name__ == "__main__":
    main()
