"""Training options a practitioner expects; each test fails if its option does nothing."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import zoo
from zoo.build.compose import compose


def _data(n=16, seed=0):
    rng = np.random.default_rng(seed)
    words = ["red apple", "green pear", "ripe banana", "sour lemon"]
    return [{"text": f"{words[i % 4]} {i}", "label": words[i % 4].split()[1]} for i in range(n)]


def _model():
    # no dropout: two runs can then be compared weight for weight
    return compose("classification", {"text": "bert-tiny"},
                   head={"name": "classification", "labels": ["apple", "banana", "lemon",
                                                               "pear"]},
                   fusion={"name": "concat-mlp", "dim": 16, "dropout": 0.0})


def test_accumulation_gives_the_same_update_in_smaller_chunks(tmp_path):
    data = _data()
    runs = {}
    for accumulate in (1, 4):
        torch.manual_seed(0)  # the same initial weights for both runs
        model = _model()
        seen = []
        model.fusion.register_forward_hook(  # training steps only (not the closed-form fit)
            lambda m, i, o: seen.append(o.shape[0]) if m.training else None)
        zoo.train(model, data, None, tmp_path / f"a{accumulate}", epochs=2, batch_size=8,
                  freeze="all", accumulate=accumulate, progress=False)
        runs[accumulate] = (zoo.load(tmp_path / f"a{accumulate}").state_dict(), max(seen))
    one, four = runs[1][0], runs[4][0]
    assert runs[1][1] == 8 and runs[4][1] == 2  # the batch really ran in chunks of 2
    # (summation order differs between chunks: float32 noise of ~1e-5 on the weights)
    assert all(torch.allclose(one[k], four[k], atol=5e-5) for k in one)


def test_early_stopping_stops_when_the_metric_stalls(tmp_path):
    data = _data()
    # (a random start: with lr 0 a closed-form start would be the best, as epoch 0)
    summary = zoo.train(_model(), data, data, tmp_path / "es", epochs=8, lr=0.0,
                        freeze="all", patience=2, progress=False, probe_init="random")
    assert summary["epochs_run"] == 3 and summary["best_epoch"] == 1  # 1 best + 2 stalled
    full = zoo.train(_model(), data, data, tmp_path / "full", epochs=4, lr=0.0, freeze="all",
                     progress=False, probe_init="random")
    assert full["epochs_run"] == 4


def test_a_closed_form_start_that_stays_best_stops_the_probe_after_three_epochs(tmp_path,
                                                                                capsys):
    """With the default --patience 0, a probe started closed-form stops once 3 epochs have
    not beaten it (here lr 0: none can); --patience, when given, rules instead, and without
    an eval split nothing stops early."""
    from zoo.training.loop import START_PATIENCE

    data = _data()
    s = zoo.train(_model(), data, data, tmp_path / "cf", epochs=8, lr=0.0, freeze="all")
    assert s["probe_init"]["method"] == "lbfgs"
    assert s["best_epoch"] == 0 and s["epochs_run"] == START_PATIENCE == 3
    assert "the closed-form start stays best after 3 epochs" in capsys.readouterr().err
    s = zoo.train(_model(), data, data, tmp_path / "p5", epochs=8, lr=0.0, freeze="all",
                  patience=5, progress=False)
    assert s["epochs_run"] == 5
    s = zoo.train(_model(), data, None, tmp_path / "noeval", epochs=4, lr=0.0, freeze="all",
                  progress=False)
    assert s["epochs_run"] == 4


def test_bf16_precision_runs_the_forward_in_bfloat16_on_cpu(tmp_path):
    model = _model()
    dtypes = []
    model.head.register_forward_hook(  # training steps (the closed-form fit runs fp32)
        lambda m, i, o: dtypes.append(o.dtype) if m.training else None)
    summary = zoo.train(model, _data(), None, tmp_path / "bf16", epochs=1, freeze="all",
                        precision="bf16", progress=False)
    assert summary["precision"] == "bf16" and dtypes and set(dtypes) == {torch.bfloat16}
    assert zoo.load(tmp_path / "bf16").state_dict()["head.proj.weight"].dtype == torch.float32
    with pytest.raises(zoo.ZooError, match="fp16 needs a CUDA GPU"):
        zoo.train(_model(), _data(), None, tmp_path / "fp16", epochs=1, precision="fp16",
                  progress=False)


def test_images_are_augmented_only_while_the_encoder_trains():
    enc = zoo.create_model("timm-tiny", augment=True).encoders["image"]
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 80, 3), np.uint8))
    enc.eval()
    a, b = (enc.preprocess([img])["pixel_values"] for _ in range(2))
    assert torch.equal(a, b)  # evaluation: deterministic
    enc.train()
    torch.manual_seed(0)
    c, d = (enc.preprocess([img])["pixel_values"] for _ in range(2))
    assert c.shape == a.shape and not torch.equal(c, d)  # training: a new view each time
    det = zoo.create_model("timm", arch="test_efficientnet", features=True,
                           augment=True).encoders["image"]  # boxes must not move
    det.train()
    assert torch.equal(det.preprocess([img])["pixel_values"], det.preprocess([img])["pixel_values"])


def _lrs(out):
    import json

    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return [r["lr"] for r in rows if "lr" in r]


def test_scheduler_choice_shapes_the_learning_rate(tmp_path):
    data = _data(32)
    lrs = {}
    for kind in ("cosine", "linear", "constant"):
        zoo.train(_model(), data, None, tmp_path / kind, epochs=4, batch_size=4, lr=1e-3,
                  warmup=0.0, freeze="all", scheduler=kind, log_every=1, progress=False,
                  loggers=[], probe_init="random")  # (the closed-form start runs at lr/3)
        lrs[kind] = _lrs(tmp_path / kind)
    n = len(lrs["constant"])
    assert n == 32 and all(x == pytest.approx(1e-3) for x in lrs["constant"])
    mid = n // 2 - 1  # after step n/2 the decay is half done
    assert lrs["linear"][mid] == pytest.approx(0.5e-3, rel=0.1)
    assert lrs["cosine"][mid] == pytest.approx(0.5e-3, rel=0.1)
    quarter = n // 4 - 1  # cosine stays higher than linear early, lower late
    assert lrs["cosine"][quarter] > lrs["linear"][quarter] * 1.05
    assert lrs["cosine"][-5] < lrs["linear"][-5]
    with pytest.raises(zoo.ZooError, match="--scheduler must be one of"):
        zoo.train(_model(), data, None, tmp_path / "x", scheduler="step")


def test_tensorboard_logs_the_same_figures_as_metrics_jsonl(tmp_path):
    import json

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    data = _data(16)
    out = tmp_path / "tb"
    zoo.train(_model(), data, data, out, epochs=3, batch_size=4, freeze="all", log_every=2,
              progress=False)  # loggers="auto": tensorboard is installed here
    acc = EventAccumulator(str(out / "tensorboard"))
    acc.Reload()
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "loss" in r]
    epochs = [r for r in rows if "eval" in r]
    loss = acc.Scalars("train/loss")
    assert [e.step for e in loss] == [r["step"] for r in steps]
    assert [e.value for e in loss] == pytest.approx([r["loss"] for r in steps], rel=1e-6)
    acc_ev = acc.Scalars("eval/accuracy")
    assert [e.value for e in acc_ev] == pytest.approx([r["eval"]["accuracy"] for r in epochs])
    none = tmp_path / "none"
    zoo.train(_model(), data, None, none, epochs=1, freeze="all", progress=False, loggers=[])
    assert not (none / "tensorboard").exists()


class _Recorder:
    """A training logger from a plugin: keeps every record it is given."""

    @zoo.hookimpl
    def register_loggers(register):
        register("recorder", "test_training_options:_make_recorder",
                 description="keeps records in a list")


RECORDS: list = []


def _make_recorder(out, config):
    class Recorder:
        def log(self, record):
            RECORDS.append(("log", record, config["scheduler"], config["resume_step"]))

        def close(self):
            RECORDS.append(("close", None, None, None))
    return Recorder()


def test_a_plugin_logger_gets_every_record_and_is_closed(tmp_path, register_plugin):
    import json

    register_plugin(_Recorder, "recorder", dist="zoo-recorder")
    RECORDS.clear()
    data = _data(16)
    out = tmp_path / "rec"
    zoo.train(_model(), data, data, out, epochs=2, batch_size=4, freeze="all", log_every=1,
              progress=False, loggers=["recorder"], scheduler="linear")
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r for kind, r, _, _ in RECORDS if kind == "log"] == rows
    assert RECORDS[-1][0] == "close" and RECORDS[0][2] == "linear" and RECORDS[0][3] == 0
    with pytest.raises(zoo.ZooError, match="logger.*nope"):
        zoo.train(_model(), data, None, tmp_path / "x", epochs=1, loggers=["nope"],
                  progress=False)


def test_every_phase_shows_progress(tmp_path, capfd):
    data = _data(16)
    zoo.train(_model(), data, data, tmp_path / "p", epochs=1, freeze="all", loggers=[])
    err = capfd.readouterr().err
    for phase in ("cache train features", "cache eval features", "train", "evaluate",
                  "report of the best model"):
        assert phase in err, phase


# ---- LP-FT: the default freeze="auto" probes, then fine-tunes a weak probe ---------------

@pytest.fixture(scope="module")
def small_digits(tmp_path_factory):
    from zoo.testing.synthetic import digits_manifests

    return digits_manifests(tmp_path_factory.mktemp("lpft"), size=32, limit=120)


def _effnet32():
    torch.manual_seed(0)
    return zoo.create_model("effnet-lite0-image-clf", pretrained=True, encoders={
        "image": {"name": "efficientnet-lite0", "data_config": {"input_size": [3, 32, 32]}}})


def _state_weights(out):
    from safetensors.torch import load_file

    step = (out / "train_state" / "latest").read_text().strip()
    return {k[len("model/"):]: v for k, v in
            load_file(str(out / "train_state" / f"state-{step}.safetensors")).items()
            if k.startswith("model/encoders.")}


def test_lp_ft_fine_tunes_a_weak_probe_and_keeps_a_strong_one(small_digits, tmp_path):
    import json

    pretrained = {f"encoders.{k}": v for k, v in _effnet32().encoders.state_dict().items()}
    # 32 px digits are far from ImageNet: the frozen probe stays under 0.98
    s = zoo.train(_effnet32(), small_digits["train"], small_digits["val"], tmp_path / "ft",
                  epochs=2, finetune_epochs=1, batch_size=16, progress=False, loggers=[])
    assert s["finetuned"] is True and s["epochs_run"] == 3 and s["frozen"] == []
    assert s["probe_best"]["accuracy"] < 0.98
    assert s["best"]["accuracy"] >= s["probe_best"]["accuracy"]  # the better stage is kept
    moved = _state_weights(tmp_path / "ft")
    assert any(not torch.equal(moved[k], pretrained[k]) for k in pretrained
               if moved[k].is_floating_point() and "running" not in k)
    # BatchNorm keeps the statistics the probe was fitted on
    assert all(torch.equal(moved[k], pretrained[k]) for k in pretrained if "running" in k)
    rows = [json.loads(x) for x in (tmp_path / "ft" / "metrics.jsonl").read_text().splitlines()]
    # epoch 0: the closed-form probe start, the first candidate for best
    assert [r["epoch"] for r in rows if "eval" in r] == [0, 1, 2, 3]
    # finetune_epochs=0 keeps the probe: the encoder never moves
    s0 = zoo.train(_effnet32(), small_digits["train"], small_digits["val"], tmp_path / "p",
                   epochs=2, finetune_epochs=0, batch_size=16, progress=False, loggers=[])
    assert s0["finetuned"] is False and s0["epochs_run"] == 2 and s0["frozen"] == ["image"]
    kept = _state_weights(tmp_path / "p")
    assert all(torch.equal(kept[k], pretrained[k]) for k in pretrained)


def test_input_size_is_matched_to_small_images_once(small_digits, tmp_path, capsys):
    import json

    from zoo_vision_timm.encoder import matched_size

    assert matched_size(8, 224) == 64 and matched_size(32, 224) == 64
    assert matched_size(48, 224) == 96 and matched_size(100, 224) is None
    assert matched_size(0, 224) is None
    model = zoo.create_model("effnet-lite0-image-clf", pretrained=False)
    assert model.encoders["image"].data_config["input_size"] == (3, 224, 224)
    zoo.train(model, small_digits["train"], None, tmp_path / "m", epochs=1, batch_size=32,
              loggers=[])
    assert "image: input size 64 px, matched to the training images (median side 32 px)" \
        in capsys.readouterr().err
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())["encoders"]["image"]
    assert cfg["kwargs"]["data_config"]["input_size"] == [3, 64, 64]
    assert cfg["kwargs"]["size_from_data"] is False
    loaded = zoo.load(tmp_path / "m")
    enc = loaded.encoders["image"]
    assert enc.data_config["input_size"] == (3, 64, 64) and not enc.size_from_data
    x = enc.preprocess([str(small_digits["train"].parent / "img" / "0000.png")])
    assert x["pixel_values"].shape[-2:] == (64, 64)
    # a saved model keeps its size when trained again, on larger images too
    enc.fit([__import__("PIL.Image", fromlist=["Image"]).new("RGB", (8, 8))] * 3)
    assert enc.data_config["input_size"] == (3, 64, 64)
    # a size the user chose is kept
    chosen = _effnet32().encoders["image"]
    chosen.fit([str(small_digits["train"].parent / "img" / "0000.png")])
    assert chosen.data_config["input_size"] == (3, 32, 32)


def test_lp_ft_resumes_inside_the_fine_tuning_stage_exactly(small_digits, tmp_path,
                                                            monkeypatch):
    import json

    from zoo.training import loop

    opts = dict(epochs=1, finetune_epochs=2, batch_size=16, progress=False, loggers=[])
    full = zoo.train(_effnet32(), small_digits["train"], small_digits["val"],
                     tmp_path / "full", **opts)
    assert full["finetuned"] and full["epochs_run"] == 3
    real = loop.train_epoch

    def crash_in_second_finetune_epoch(run, epoch):
        if epoch == 2:
            raise KeyboardInterrupt  # the state saved at the end of epoch 2 is in "finetune"
        real(run, epoch)

    monkeypatch.setattr(loop, "train_epoch", crash_in_second_finetune_epoch)
    with pytest.raises(KeyboardInterrupt):
        zoo.train(_effnet32(), small_digits["train"], small_digits["val"], tmp_path / "cut",
                  **opts)
    assert loop.saved_stage(tmp_path / "cut" / "train_state") == "finetune"
    monkeypatch.setattr(loop, "train_epoch", real)
    again = zoo.train(_effnet32(), small_digits["train"], small_digits["val"],
                      tmp_path / "cut", resume=True, **opts)
    assert again["best"] == full["best"] and again["finetuned"]
    a, b = _state_weights(tmp_path / "full"), _state_weights(tmp_path / "cut")
    assert all(torch.equal(a[k], b[k]) for k in a)
    strip = lambda p: [{k: v for k, v in json.loads(x).items() if k != "seconds"}  # noqa
                       for x in (p / "metrics.jsonl").read_text().splitlines()]
    assert strip(tmp_path / "full") == strip(tmp_path / "cut")


def test_the_feature_cache_encodes_texts_sorted_by_length_and_keeps_their_order():
    from zoo.data.manifest import Example
    from zoo.training.cache import encode_all

    model = _model().eval()
    texts = ["a " * n + "word" for n in (30, 2, 17, 1, 25, 8, 12, 3)]
    examples = [Example(i + 1, {"text": t}, {"label": "apple"}) for i, t in enumerate(texts)]
    seen = []
    real = model.preprocess
    model.preprocess = lambda batch: (seen.append([len(x["text"]) for x in batch]),
                                      real(batch))[1]
    rows = encode_all(model, examples, batch_size=3)
    flat = [n for batch in seen for n in batch]
    assert flat == sorted(flat)  # batches of similar lengths
    model.preprocess = real
    for ex, row in zip(examples, rows):  # each row is its own example's encoding
        alone = encode_all(model, [ex], batch_size=1)[0]["text"]["pooled"]
        assert torch.allclose(row["text"]["pooled"], alone, atol=1e-5)


def test_save_state_false_writes_no_resume_state_and_trains_the_same(tmp_path):
    runs = {}
    for keep in (True, False):
        torch.manual_seed(0)
        zoo.train(_model(), _data(), _data(8, 1), tmp_path / str(keep), epochs=2,
                  batch_size=8, freeze="none", save_state=keep, progress=False, loggers=[])
        runs[keep] = zoo.load(tmp_path / str(keep)).state_dict()
    assert (tmp_path / "True" / "train_state").is_dir()
    assert not (tmp_path / "False" / "train_state").exists()
    assert all(torch.equal(runs[True][k], runs[False][k]) for k in runs[True])


def test_the_card_shows_only_the_training_rows_that_applied(tmp_path):
    """An encoder trained from scratch at lr with no probe: no "encoder learning rate:
    lr / 10" and no "probe start" on its card; a frozen, cached probe on a pretrained
    encoder: its probe start, and still no encoder rate (nothing pretrained was tuned)."""
    data = [{"text": t, "label": k} for t, k in [
        ("a sunny warm day", "good"), ("rain and cold wind", "bad"), ("warm sun", "good"),
        ("cold rain", "bad"), ("bright and warm", "good"), ("grey and wet", "bad")]]
    zoo.train("char-text-clf", data, data, tmp_path / "scratch", epochs=1, progress=False)
    card = (tmp_path / "scratch" / "README.md").read_text()
    assert "| learning rate | 0.001 |" in card
    assert "encoder learning rate" not in card and "probe start" not in card
    zoo.train("minilm-text-clf", data, data, tmp_path / "probe", epochs=1, freeze="all",
              progress=False)
    card = (tmp_path / "probe" / "README.md").read_text()
    assert "| probe start | logistic regression fitted by L-BFGS" in card
    assert "| frozen encoders | text |" in card and "encoder learning rate" not in card


def test_encoders_fine_tune_at_their_own_fraction_of_lr():
    from zoo.training.config import make_config
    from zoo.training.optim import make_optimizer

    cfg = make_config({"lr": 1e-3})
    model = _effnet32()
    assert model.encoders["image"].finetune_lr_scale == 0.3
    groups = {g["name"]: g["lr"] for g in make_optimizer(model, cfg, finetune=True).param_groups}
    assert groups == pytest.approx({"new layers": 3e-4, "encoder image": 3e-4})
    probe = {g["name"]: g["lr"] for g in make_optimizer(model, cfg).param_groups}
    assert probe["new layers"] == pytest.approx(1e-3)
    # the default fraction (0.1), and encoder_lr above either
    text = zoo.create_model("minilm-text-clf", pretrained=True)
    got = {g["name"]: g["lr"] for g in make_optimizer(text, cfg, finetune=True).param_groups}
    assert got == pytest.approx({"new layers": 1e-4, "encoder text": 1e-4})
    fixed = make_config({"lr": 1e-3, "encoder_lr": 5e-5})
    assert {g["lr"] for g in make_optimizer(model, fixed, finetune=True).param_groups} \
        == {5e-5}
