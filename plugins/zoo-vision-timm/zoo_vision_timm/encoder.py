"""A timm image encoder: pooled embedding (pre-logits) and multi-scale feature maps."""
from __future__ import annotations

from typing import Any, Sequence

import torch

from zoo.plugin import Encoder, EncoderOutput, ZooError, read_image

_DATA_KEYS = ("input_size", "interpolation", "mean", "std", "crop_pct", "crop_mode")


class TimmEncoder(Encoder):
    concurrent_forward = True  # forward keeps no state: batches may run side by side
    modality = "image"
    # ImageNet conv nets fine-tune well faster than transformers: digits at 64 px, 10 LP-FT
    # epochs, test accuracy 0.975 at lr x 0.1 vs 0.992 at x 0.3 (one split; bench_image.py)
    finetune_lr_scale = 0.3

    def __init__(self, model: Any, arch: str, data_config: dict[str, Any],
                 features: bool = False, out_indices: Sequence[int] | None = None,
                 augment: bool = False, size_from_data: bool = False) -> None:
        super().__init__()
        self.model = model
        self.arch = arch
        self.data_config = {k: data_config[k] for k in _DATA_KEYS if k in data_config}
        self.dim = int(model.num_features)
        self.features = bool(features)
        # augment=True: while this encoder trains (not frozen), timm's training transforms
        # (random-resized crop, flip, RandAugment). Opt-in: it changes what a from-scratch
        # run learns in few epochs. Never with feature maps: a crop would move boxes.
        self.augment = bool(augment) and not self.features
        # the input size is matched to the training images by ``fit`` (pooled output only:
        # detection and segmentation heads are built for the size they were given)
        self.size_from_data = bool(size_from_data) and not self.features
        self._make_transforms()
        info = model.feature_info
        n = len(info)
        self.out_indices = tuple(out_indices) if out_indices else tuple(range(max(0, n - 3), n))
        self.feature_channels = tuple(int(info[i]["num_chs"]) for i in self.out_indices)
        self.feature_strides = tuple(int(info[i]["reduction"]) for i in self.out_indices)
        self.outputs = ("pooled", "features") if self.features else ("pooled",)

    def _make_transforms(self) -> None:
        import timm.data

        self.transform = timm.data.create_transform(**self.data_config, is_training=False)
        self.train_transform = timm.data.create_transform(
            **{k: self.data_config[k] for k in ("input_size", "interpolation", "mean", "std")
               if k in self.data_config},
            is_training=True, auto_augment="rand-m9-mstd0.5") if self.augment else None

    def fit(self, values: Sequence[Any]) -> None:
        """Match the input size to small training images, once: an 8x8 scan upscaled to
        224 px costs 12x the compute of 64 px and its features probe worse (digits, frozen
        EfficientNet-Lite0, closed-form probe on val: 0.936 at 64 px, 0.928 at 96, 0.919 at
        128; README). Only for an encoder built without an explicit ``input_size``: a
        saved model (its config names its size) and a size the user chose keep theirs."""
        if not self.size_from_data or not values:
            return
        self.size_from_data = False  # the first fit decides; a saved model keeps it
        side = data_side(values)
        size = matched_size(side, int(self.data_config["input_size"][-1]))
        if size is None:
            return
        self.data_config["input_size"] = (3, size, size)
        self.data_config["crop_pct"] = 1.0  # the whole (small) image, not a centre crop
        self._make_transforms()
        self.fitted_note = (f"input size {size} px, matched to the training images "
                            f"(median side {side} px)")

    def preprocess(self, values: Sequence[Any]) -> dict[str, torch.Tensor]:
        sizes, pixels = [], []
        transform = self.train_transform if self.training and self.augment else self.transform
        for v in values:
            img = read_image(v)
            sizes.append((img.height, img.width))
            pixels.append(transform(img))
        return {"pixel_values": torch.stack(pixels),  # (B, 3, H, W)
                "image_sizes": torch.tensor(sizes, dtype=torch.long)}  # (B, 2) original h, w

    def forward(self, pixel_values: torch.Tensor, image_sizes: torch.Tensor | None = None
                ) -> EncoderOutput:
        size = (int(pixel_values.shape[-2]), int(pixel_values.shape[-1]))
        if not self.features:
            return EncoderOutput(pooled=self.model(pixel_values),  # (B, D)
                                 image_sizes=image_sizes, input_size=size)
        final, maps = self.model.forward_intermediates(
            pixel_values, indices=list(self.out_indices))  # (B, C, h, w), [(B, C_i, H_i, W_i)]
        pooled = self.model.forward_head(final, pre_logits=True)  # (B, D)
        return EncoderOutput(pooled=pooled, features=list(maps), strides=self.feature_strides,
                             image_sizes=image_sizes, input_size=size)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "data_config": _jsonable(self.data_config)}

    def config(self) -> dict[str, Any]:
        return {"arch": self.arch, "data_config": _jsonable(self.data_config),
                "features": self.features, "out_indices": list(self.out_indices),
                "augment": self.augment, "size_from_data": self.size_from_data}

    def preprocessor_config(self) -> dict[str, Any]:
        return _jsonable(self.data_config)


#: the smallest input size the input size is matched down to (EfficientNet's stride is 32:
#: 64 px leaves a 2x2 last map)
MIN_MATCHED = 64
#: images are read for their size, at most this many, evenly spaced
SIZE_SAMPLE = 64


def data_side(values: Sequence[Any]) -> int:
    """The median longer side of (a sample of) the training images; files are read for
    their header only."""
    from PIL import Image

    step = max(1, len(values) // SIZE_SAMPLE)
    sides = []
    for v in list(values)[::step][:SIZE_SAMPLE]:
        if isinstance(v, str) or hasattr(v, "__fspath__"):
            try:
                with Image.open(v) as im:
                    sides.append(max(im.size))
                continue
            except (OSError, ValueError):
                pass  # unreadable here: read_image says why when it is used
        try:
            sides.append(max(read_image(v).size))
        except ZooError:
            continue
    return int(sorted(sides)[len(sides) // 2]) if sides else 0


def matched_size(side: int, default: int) -> int | None:
    """The input size for images whose longer side is ``side``: twice it, rounded up to a
    multiple of 32, at least MIN_MATCHED; None when that is not below ``default``."""
    if side <= 0:
        return None
    size = max(MIN_MATCHED, -(-2 * side // 32) * 32)
    return size if size < default else None


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def build(*, arch: str | None = None, pretrained: bool = False, weights: str | None = None,
          assets_dir: str | None = None, data_config: dict[str, Any] | None = None,
          features: bool = False, out_indices: Sequence[int] | None = None,
          timm_pretrained: bool = False, augment: bool = False,
          size_from_data: bool = True) -> TimmEncoder:
    """The factory behind every vision encoder of this plugin.

    ``pretrained`` with a zoo ``weights`` tag loads that checkpoint (key-mapped when it
    comes from elsewhere); ``timm_pretrained=True`` instead uses timm's own pretrained tag
    (online, or from the Hugging Face cache). ``size_from_data`` (without an explicit
    ``data_config["input_size"]``): training matches the input size to small images.
    """
    import timm

    from zoo.plugin import load_weights

    if not arch:
        raise ZooError("this vision encoder needs arch='<timm model name>' (see timm.list_models())")
    try:
        model = timm.create_model(arch, pretrained=bool(pretrained and timm_pretrained))
    except RuntimeError as e:
        raise ZooError(f"timm cannot create {arch!r}: {e}") from None
    if pretrained and not timm_pretrained:
        if not weights:
            raise ZooError(f"no zoo weights for {arch!r}; pass timm_pretrained=True to use "
                           f"timm's own (online)")
        load_weights(model, weights)
    model.reset_classifier(0)  # pooled pre-logits embedding, (B, num_features)
    cfg = timm.data.resolve_data_config({}, model=model)
    chosen = "input_size" in (data_config or {})
    cfg.update(data_config or {})
    for k in ("input_size", "mean", "std"):
        if k in cfg:
            cfg[k] = tuple(cfg[k])
    return TimmEncoder(model, arch, cfg, features=features, out_indices=out_indices,
                       augment=augment, size_from_data=size_from_data and not chosen)
