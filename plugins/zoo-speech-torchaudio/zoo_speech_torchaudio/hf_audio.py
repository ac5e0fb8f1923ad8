"""transformers audio encoders (Wav2Vec2, HuBERT, Whisper's encoder) by Hub id or folder."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch

from zoo.plugin import Encoder, EncoderOutput, ZooError, sequence_output

from .audio import load_audio


class HFAudioEncoder(Encoder):
    modality = "audio"
    outputs = ("pooled", "sequence")

    def __init__(self, model: Any, feature_extractor: Any, source: str | None) -> None:
        super().__init__()
        self.is_whisper = model.config.model_type == "whisper"
        # Whisper is an encoder-decoder: keep only the encoder
        self.model = model.get_encoder() if self.is_whisper else model
        self.feature_extractor = feature_extractor
        self.sample_rate = int(feature_extractor.sampling_rate)
        self.source = source
        self.dim = int(model.config.d_model if self.is_whisper else model.config.hidden_size)
        self._config = model.config

    def preprocess(self, values: Sequence[Any]) -> dict[str, torch.Tensor]:
        wavs = [load_audio(v, self.sample_rate).numpy() for v in values]
        lengths = torch.tensor([len(w) for w in wavs], dtype=torch.long)
        if self.is_whisper:  # log-mel, padded to Whisper's fixed 30 s window
            feats = self.feature_extractor(wavs, sampling_rate=self.sample_rate,
                                           return_tensors="pt")
            return {"input_features": feats["input_features"], "lengths": lengths}
        feats = self.feature_extractor(wavs, sampling_rate=self.sample_rate, padding=True,
                                       return_attention_mask=True, return_tensors="pt")
        return {"input_values": feats["input_values"], "attention_mask": feats["attention_mask"],
                "lengths": lengths}

    def forward(self, lengths: torch.Tensor, input_values: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None,
                input_features: torch.Tensor | None = None) -> EncoderOutput:
        if self.is_whisper:
            x = self.model(input_features).last_hidden_state  # (B, 1500, D) for 30 s
            frames = (lengths + 319) // 320  # 10 ms hop, then stride-2 conv: 20 ms a frame
        else:
            x = self.model(input_values, attention_mask=attention_mask).last_hidden_state
            frames = self.model._get_feat_extract_output_lengths(lengths)  # (B,)
        return sequence_output(x, frames)

    def config(self) -> dict[str, Any]:
        cfg = self._config.to_dict()
        for k in ("_name_or_path", "transformers_version", "architectures", "dtype",
                  "torch_dtype"):
            cfg.pop(k, None)
        return {"hf_config": cfg, "source": self.source}

    def preprocessor_config(self) -> dict[str, Any]:
        return {"sample_rate": self.sample_rate, "mono": True,
                "feature_extractor": type(self.feature_extractor).__name__}

    def save_assets(self, directory: Path) -> None:
        super().save_assets(directory)
        self.feature_extractor.save_pretrained(str(directory))


def _folder(source: str) -> str:
    """A weights tag, ``hf-hub:org/name`` or a folder -> what from_pretrained reads (Hub ids
    go through transformers' own cache and offline handling)."""
    from zoo.plugin import has_weights, weights_info, weights_path

    if has_weights(source):
        sources = weights_info(source).sources
        hub = [s for s in sources if s.startswith("hf-hub:")]
        if hub and len(hub) == len(sources):
            return hub[0][len("hf-hub:"):].split("@")[0]
        return str(weights_path(source))
    if source.startswith("hf-hub:"):
        return source[len("hf-hub:"):].split("@")[0]
    return source


def build(*, pretrained: bool = False, weights: str | None = None,
          assets_dir: str | None = None, source: str | None = None,
          hf_config: dict | None = None) -> HFAudioEncoder:
    from transformers import AutoConfig, AutoFeatureExtractor, AutoModel
    from transformers.utils import logging as hf_logging

    from zoo.plugin import offline

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    local = {"local_files_only": True} if offline() else {}
    if assets_dir is not None:
        if not hf_config:
            raise ZooError("a saved audio encoder needs 'hf_config' in config.json")
        fe = AutoFeatureExtractor.from_pretrained(assets_dir, local_files_only=True)
        model = AutoModel.from_config(AutoConfig.for_model(**hf_config))
        return HFAudioEncoder(model, fe, source)
    origin = (weights or source) if pretrained else source
    if not origin:
        raise ZooError("hf-audio needs source='org/name' (a Hub id) or a local folder")
    folder = _folder(origin)
    try:
        fe = AutoFeatureExtractor.from_pretrained(folder, **local)
        if pretrained:
            model = AutoModel.from_pretrained(folder, **local)
        else:
            model = AutoModel.from_config(AutoConfig.from_pretrained(folder, **local))
    except OSError as e:
        raise ZooError(f"cannot load audio model from {origin!r}: {str(e).splitlines()[0]}"
                       f"{' (offline: HF_HUB_OFFLINE=1)' if offline() else ''}") from None
    return HFAudioEncoder(model, fe, source or origin)
