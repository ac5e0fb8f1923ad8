"""The three MTCNN networks and the cascade's box arithmetic (our own code; layer names
follow the facenet-pytorch checkpoints so they load without renaming)."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def _conv(cin: int, cout: int, k: int) -> tuple[nn.Conv2d, nn.PReLU]:
    return nn.Conv2d(cin, cout, kernel_size=k), nn.PReLU(cout)


class PNet(nn.Module):
    """Fully convolutional 12x12 proposal net: (B, 3, H, W) -> box offsets (B, 4, h, w) and
    face probability (B, h, w); one cell per 2 input pixels."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = _conv(3, 10, 3)
        self.conv2, self.prelu2 = _conv(10, 16, 3)
        self.conv3, self.prelu3 = _conv(16, 32, 3)
        self.conv4_1 = nn.Conv2d(32, 2, kernel_size=1)
        self.conv4_2 = nn.Conv2d(32, 4, kernel_size=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 2, 2, ceil_mode=True)
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return self.conv4_2(x), self.conv4_1(x).softmax(1)[:, 1]


def _flatten(x: torch.Tensor) -> torch.Tensor:
    # the checkpoints were converted from TensorFlow: dense layers read (B, W, H, C) order
    return x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)


class RNet(nn.Module):
    """24x24 refinement net: (N, 3, 24, 24) -> offsets (N, 4), face probability (N,)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = _conv(3, 28, 3)
        self.conv2, self.prelu2 = _conv(28, 48, 3)
        self.conv3, self.prelu3 = _conv(48, 64, 2)
        self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu2(self.conv2(x)), 3, 2, ceil_mode=True)
        x = self.prelu4(self.dense4(_flatten(self.prelu3(self.conv3(x)))))
        return self.dense5_2(x), self.dense5_1(x).softmax(1)[:, 1]


class ONetLayers(nn.Module):
    """48x48 output net: (N, 3, 48, 48) -> offsets (N, 4), face probability (N,)
    (the landmark branch dense6_3 is loaded but unused)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = _conv(3, 32, 3)
        self.conv2, self.prelu2 = _conv(32, 64, 3)
        self.conv3, self.prelu3 = _conv(64, 64, 3)
        self.conv4, self.prelu4 = _conv(64, 128, 2)
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def onet(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu2(self.conv2(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu3(self.conv3(x)), 2, 2, ceil_mode=True)
        x = self.prelu5(self.dense5(_flatten(self.prelu4(self.conv4(x)))))
        return self.dense6_2(x), self.dense6_1(x).softmax(1)[:, 1]


# ---- box arithmetic (boxes: (N, 5) x1, y1, x2, y2, score in pixels) ---------------------

def normalise(pixels: torch.Tensor) -> torch.Tensor:
    return (pixels - 127.5) * 0.0078125


def square(boxes: torch.Tensor) -> torch.Tensor:
    """Grow each box to a square around its centre."""
    b = boxes.clone()
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    side = torch.maximum(w, h)
    b[:, 0] = b[:, 0] + w * 0.5 - side * 0.5
    b[:, 1] = b[:, 1] + h * 0.5 - side * 0.5
    b[:, 2], b[:, 3] = b[:, 0] + side, b[:, 1] + side
    return b


def regress(boxes: torch.Tensor, offsets: torch.Tensor, plus_one: bool = True) -> torch.Tensor:
    """Apply the nets' box offsets (fractions of the box's width/height)."""
    b = boxes.clone()
    extra = 1.0 if plus_one else 0.0
    w, h = b[:, 2] - b[:, 0] + extra, b[:, 3] - b[:, 1] + extra
    b[:, :4] = b[:, :4] + offsets * torch.stack([w, h, w, h], 1)
    return b


def crops(image: torch.Tensor, boxes: torch.Tensor, size: int
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Square patches (N, 3, size, size) of ``image`` (3, H, W; raw 0-255) under the boxes
    (clipped to the image, area-resampled, normalised) and a mask of the boxes kept."""
    h, w = image.shape[-2:]
    b = boxes[:, :4].trunc().long()
    x1, y1 = b[:, 0].clamp(min=1), b[:, 1].clamp(min=1)
    x2, y2 = b[:, 2].clamp(max=w), b[:, 3].clamp(max=h)
    keep = (x2 > x1 - 1) & (y2 > y1 - 1)
    out = [F.interpolate(image[None, :, y1[k] - 1:y2[k], x1[k] - 1:x2[k]], size=(size, size),
                         mode="area") for k in keep.nonzero()[:, 0].tolist()]
    patches = torch.cat(out) if out else image.new_zeros(0, 3, size, size)
    return normalise(patches), keep


def nms_min(boxes: torch.Tensor, scores: torch.Tensor, iou: float) -> torch.Tensor:
    """NMS whose overlap is intersection over the smaller box (drops faces inside faces);
    indices kept, by decreasing score."""
    order = scores.argsort(descending=True)
    area = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)
    keep = []
    while order.numel():
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        xx1 = torch.maximum(boxes[i, 0], boxes[rest, 0])
        yy1 = torch.maximum(boxes[i, 1], boxes[rest, 1])
        xx2 = torch.minimum(boxes[i, 2], boxes[rest, 2])
        yy2 = torch.minimum(boxes[i, 3], boxes[rest, 3])
        inter = (xx2 - xx1 + 1).clamp(min=0) * (yy2 - yy1 + 1).clamp(min=0)
        order = rest[inter / torch.minimum(area[i], area[rest]) <= iou]
    return torch.tensor(keep, dtype=torch.long)


def fitted_size(height: int, width: int, max_size: int) -> tuple[int, int]:
    """The size an image is shrunk to so its longer side is at most ``max_size``."""
    s = min(1.0, max_size / max(height, width))
    return max(1, round(height * s)), max(1, round(width * s))
