"""The probe's closed-form start (zoo/tasks/probe.py): a logistic regression fitted by
L-BFGS on the cached features, written exactly into concat-mlp + classification head."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import zoo
from zoo.build.compose import compose
from zoo.errors import ZooError
from zoo.tasks.probe import eligible

LABELS = ["apple", "banana", "lemon", "pear"]


def _data(n=24, offset=0):
    words = ["red apple", "ripe banana", "sour lemon", "green pear"]
    return [{"text": f"{words[i % 4]} number {i + offset}", "label": words[i % 4].split()[1]}
            for i in range(n)]


def _model(fusion="concat-mlp", multi_label=False):
    torch.manual_seed(0)
    return compose("classification", {"text": "bert-tiny"},
                   head={"name": "classification", "labels": LABELS,
                         "multi_label": multi_label},
                   fusion={"name": fusion, "dim": 16})


def _fusion_inputs(model, rows):
    """What the fusion's first linear layer sees, computed here from the encoder itself."""
    with torch.no_grad():
        model.eval()
        pooled = model.encode(model.preprocess([{"text": r["text"]} for r in rows]))["text"][0]
        return model.fusion.norms["text"](pooled.pooled).numpy()


def test_the_start_is_scikit_learns_logistic_regression_written_exactly(tmp_path):
    from sklearn.linear_model import LogisticRegression

    train, val = _data(), _data(12, offset=100)
    # lr 0: the epochs cannot move anything, so the saved model is the closed-form start
    summary = zoo.train(_model(), train, val, tmp_path / "m", epochs=1, lr=0.0,
                        freeze="all", progress=False)
    init = summary["probe_init"]
    assert init["method"] == "lbfgs" and init["C"] in (0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
    model = zoo.load(tmp_path / "m")
    x = _fusion_inputs(model, val)
    with torch.no_grad():
        ours = torch.softmax(model(model.preprocess([{"text": r["text"]} for r in val])),
                             -1).numpy()
    xt = _fusion_inputs(model, train)
    ref = LogisticRegression(C=init["C"] / xt.shape[1], tol=1e-10, max_iter=10000).fit(
        xt, [LABELS.index(r["label"]) for r in train])
    np.testing.assert_allclose(ours, ref.predict_proba(x), atol=2e-3)
    # and the recorded eval accuracy is the saved model's
    acc = np.mean(ours.argmax(1) == [LABELS.index(r["label"]) for r in val])
    assert init["eval_accuracy"] == pytest.approx(acc, abs=1e-6)


def test_c_is_the_one_of_least_eval_log_loss(tmp_path):
    """C (from the grid) is the one whose fit has the least cross-entropy on the eval rows,
    checked against scikit-learn's logistic regression at every C of the grid; ties go to
    the stronger regularisation."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss

    from zoo.tasks.probe import C_GRID, pick_c

    assert pick_c([0.5, 0.4, 0.4, 0.6]) == 1 and pick_c([0.3, 0.3]) == 0
    train, val = _data(40), _data(16, offset=100)
    for r in val[::3]:  # some eval rows the features cannot get right: losses differ by C
        r["label"] = LABELS[(LABELS.index(r["label"]) + 1) % len(LABELS)]
    summary = zoo.train(_model(), train, val, tmp_path / "m", epochs=1, lr=0.0,
                        freeze="all", progress=False, loggers=[])
    init = summary["probe_init"]
    model = zoo.load(tmp_path / "m")
    xt, xv = _fusion_inputs(model, train), _fusion_inputs(model, val)
    yt = [LABELS.index(r["label"]) for r in train]
    yv = [LABELS.index(r["label"]) for r in val]
    losses = [log_loss(yv, LogisticRegression(C=c / xt.shape[1], tol=1e-10, max_iter=10000)
                       .fit(xt, yt).predict_proba(xv), labels=range(len(LABELS)))
              for c in C_GRID]
    assert init["C"] == C_GRID[int(np.argmin(losses))]
    assert init["eval_log_loss"] == pytest.approx(min(losses), rel=2e-3)
    assert len({round(v, 3) for v in losses}) > 1  # the choice was not a tie


def test_the_start_beats_a_random_head_before_any_step(tmp_path):
    """Same lr 0 run with both starts: the fitted one already classifies; the random one
    is whatever its initial weights say."""
    train, val = _data(), _data(12, offset=100)
    fitted = zoo.train(_model(), train, val, tmp_path / "a", epochs=1, lr=0.0, freeze="all",
                       progress=False)
    random = zoo.train(_model(), train, val, tmp_path / "b", epochs=1, lr=0.0, freeze="all",
                       probe_init="random", progress=False)
    assert random["probe_init"] is None
    assert fitted["best"]["accuracy"] == 1.0 and random["best"]["accuracy"] <= 0.5
    # the random run's head is exactly its initial weights (the option changed nothing else)
    assert torch.equal(zoo.load(tmp_path / "b").state_dict()["head.proj.weight"],
                       _model().state_dict()["head.proj.weight"])


def test_the_epochs_refine_the_start_at_a_third_of_the_learning_rate(tmp_path):
    def peak_lr(out):
        lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
        return max(r["lr"] for r in lines if "lr" in r)

    kw = dict(epochs=2, lr=3e-3, freeze="all", log_every=1, progress=False, warmup=0.0)
    zoo.train(_model(), _data(), None, tmp_path / "a", **kw)
    zoo.train(_model(), _data(), None, tmp_path / "b", probe_init="random", **kw)
    assert peak_lr(tmp_path / "a") == pytest.approx(1e-3)
    assert peak_lr(tmp_path / "b") == pytest.approx(3e-3)


def test_without_an_eval_split_a_fixed_strength_is_used(tmp_path):
    summary = zoo.train(_model(), _data(), None, tmp_path / "m", epochs=1, freeze="all",
                        progress=False)
    assert summary["probe_init"] == {
        "method": "lbfgs", "C": 3.0, "eval_accuracy": None, "lr_scale": pytest.approx(1 / 3),
        "description": "logistic regression fitted by L-BFGS (C 3.0), refined at lr / 3"}


def test_another_fusion_gets_the_regression_on_its_output(tmp_path):
    """A gated fusion cannot hold the regression, but the head's linear layer can: it is
    fitted on what the (fresh) fusion gives, and the model predicts as the fit says."""
    model = _model("gated")
    assert not eligible(model) and model.head.probe_layer() is model.head.proj
    train, val = _data(), _data(12, offset=100)
    summary = zoo.train(model, train, val, tmp_path / "m", epochs=1, lr=0.0, freeze="all",
                        progress=False)
    init = summary["probe_init"]
    assert init["method"] == "lbfgs"
    assert summary["best"]["accuracy"] == pytest.approx(init["eval_accuracy"], abs=1e-6)


@pytest.mark.parametrize("case", ["multi-label", "no cache", "trained encoder"])
def test_where_it_cannot_be_written_exactly_the_start_stays_random(tmp_path, case):
    model = _model(multi_label=case == "multi-label")
    data = _data(8)
    if case == "multi-label":
        data = [{**r, "label": [r["label"]]} for r in data]
    summary = zoo.train(model, data, None, tmp_path / "m", epochs=1, progress=False,
                        freeze="none" if case == "trained encoder" else "all",
                        cache_features=case != "no cache")
    assert summary["probe_init"] is None
    assert eligible(_model()) and (case in ("no cache", "trained encoder")
                                   or not eligible(model))


def test_a_bad_value_is_one_line():
    with pytest.raises(ZooError, match="--probe-init must be 'lbfgs' or 'random'"):
        zoo.train(_model(), _data(), None, "/nonexistent", probe_init="sgd")


def test_the_card_says_how_the_probe_started(tmp_path):
    zoo.train(_model(), _data(), _data(12, offset=100), tmp_path / "m", epochs=1,
              freeze="all", progress=False)
    card = (tmp_path / "m" / "README.md").read_text()
    assert "| probe start | logistic regression fitted by L-BFGS (C " in card
    assert "eval accuracy 1.0000), refined at lr / 3 |" in card


def test_a_subclass_of_the_fusion_or_head_is_left_alone():
    """A plugin's subclass may compute something else around the MLP: no exact embedding."""
    from zoo.fusions.concat import ConcatMLP

    class Doubled(ConcatMLP):
        def forward(self, encoded, batch_size):
            return 2 * super().forward(encoded, batch_size)

    model = _model()
    assert eligible(model)
    model.fusion.__class__ = Doubled
    assert not eligible(model)


def test_the_cli_flag_reaches_the_run(tmp_path):
    from conftest import run_zoo

    _model().save_pretrained(tmp_path / "base")
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in _data()))
    for flag, expected in (("lbfgs", "lbfgs"), ("random", None)):
        out = tmp_path / flag
        run_zoo("train", str(tmp_path / "base"), "--train", str(data), "--out", str(out),
                "--freeze", "all", "--epochs", "1", "--probe-init", flag, "--quiet",
                check=True)
        init = json.loads((out / "training.json").read_text())["probe_init"]
        assert (init or {}).get("method") == expected
    bad = run_zoo("train", str(tmp_path / "base"), "--train", str(data), "--out",
                  str(tmp_path / "x"), "--probe-init", "sgd")
    assert bad.returncode != 0 and "--probe-init" in bad.stderr


def test_the_start_is_a_candidate_for_best(tmp_path):
    """The fitted start is epoch 0: epochs that only lose ground (a learning rate far too
    high) leave the start as the saved best, with its figures in the card."""
    train, val = _data(), _data(12, offset=100)
    summary = zoo.train(_model(), train, val, tmp_path / "m", epochs=2, lr=50.0,
                        freeze="all", finetune_epochs=0, progress=False)
    start = summary["probe_init"]["eval_accuracy"]
    log = [json.loads(x) for x in (tmp_path / "m" / "metrics.jsonl").read_text().splitlines()]
    epochs = {r["epoch"]: r["eval"]["accuracy"] for r in log if "eval" in r}
    assert epochs[0] == pytest.approx(start, abs=1e-6)
    top = max(epochs.values())
    # the earliest epoch with the top figure is kept (a tie does not replace the best)
    assert summary["best_epoch"] == min(e for e, v in epochs.items() if v == top)
    assert summary["best_epoch"] == 0  # lr 50 wrecks the head: the start stays the best
    model = zoo.load(tmp_path / "m")
    preds = model.predict([{"text": r["text"]} for r in val])
    acc = np.mean([p["label"] == r["label"] for p, r in zip(preds, val)])
    assert acc == pytest.approx(start, abs=1e-6)
    assert "(the closed-form probe start)" in (tmp_path / "m" / "README.md").read_text()


def test_a_linear_head_starts_from_the_regression_written_exactly(tmp_path):
    """A head whose logits come from one linear layer (Head.probe_layer: here the timm
    plugin's image-classifier, the ready ImageNet models' head) with no fusion: the start
    is scikit-learn's regression on the standardised pooled features, in the raw scale."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from zoo.testing.synthetic import digits_manifests

    data = digits_manifests(tmp_path / "d", size=32, limit=120)
    torch.manual_seed(0)
    model = compose("classification", {"image": {"name": "timm-tiny", "data_config": {
        "input_size": [3, 32, 32]}}}, {"name": "image-classifier", "labels": ["x"]})
    assert model.fusion is None
    summary = zoo.train(model, data["train"], data["val"], tmp_path / "m", epochs=1, lr=0.0,
                        freeze="all", finetune_epochs=0, progress=False)
    init = summary["probe_init"]
    assert init["method"] == "lbfgs" and summary["best_epoch"] == 0
    m = zoo.load(tmp_path / "m")

    def rows(split):
        return [json.loads(x) for x in data[split].read_text().splitlines()]

    def pooled(split):
        return m.embed([{"image": str(tmp_path / "d" / r["image"])} for r in rows(split)],
                       )["image"].numpy()

    xt, xv = pooled("train"), pooled("val")
    labels = m.labels
    scaler = StandardScaler().fit(xt)
    ref = LogisticRegression(C=init["C"] / xt.shape[1], tol=1e-10, max_iter=20000).fit(
        scaler.transform(xt), [labels.index(r["label"]) for r in rows("train")])
    with torch.no_grad():
        ours = torch.softmax(m.head.fc(torch.tensor(xv)), -1).numpy()
    np.testing.assert_allclose(ours, ref.predict_proba(scaler.transform(xv)), atol=5e-3)
    acc = np.mean(ours.argmax(1) == [labels.index(r["label"]) for r in rows("val")])
    assert init["eval_accuracy"] == pytest.approx(acc, abs=1e-6) and acc > 0.5


def test_an_epoch_replaces_the_start_only_beyond_the_eval_noise():
    """The start (epoch 0) is the convex optimum on fixed features: an epoch must beat it by
    more than one standard error of the eval accuracy (here sqrt(.8 * .2 / 100) = 0.04);
    between epochs any gain counts."""
    from types import SimpleNamespace

    from zoo.tasks.classification import Classification
    from zoo.training.loop import _better

    run = SimpleNamespace(task=Classification(), eval_ex=[None] * 100,
                          state={"best": {"accuracy": 0.8}, "best_epoch": 0})
    assert not _better(run, {"accuracy": 0.83})
    assert _better(run, {"accuracy": 0.85})
    run.state["best_epoch"] = 3
    assert _better(run, {"accuracy": 0.81})
    run.state["best"] = None
    assert _better(run, {"accuracy": 0.1})


# ---- Encoder.scale_choices: block weights chosen on eval with the regression -------------

def _two_blocks(pretrained=False, weights=None, assets_dir=None, wa=1.0, wb=1.0, open="b"):
    """A text encoder with two blocks of output: a (8 columns of noise from the text's
    hash) and b (one-hot of the fruit named), each at its weight; ``open`` leaves one
    block's weight to the probe (0.001 or 1.0)."""
    import zlib

    from zoo.plugin import Encoder, EncoderOutput

    class TwoBlocks(Encoder):
        modality = "text"
        outputs = ("pooled",)

        def __init__(self):
            super().__init__()
            self.dim, self.w = 12, {"a": float(wa), "b": float(wb)}

        def preprocess(self, values):
            out = torch.zeros(len(values), 12)
            for i, v in enumerate(values):
                g = torch.Generator().manual_seed(zlib.crc32(v.encode()))
                out[i, :8] = torch.randn(8, generator=g) * self.w["a"]
                out[i, 8 + LABELS.index(v.split()[1])] = self.w["b"]
            return {"x": out}

        def forward(self, x):
            return EncoderOutput(pooled=x)

        def scale_choices(self):
            return {open: {"columns": (0, 8) if open == "a" else (8, 12),
                           "weight": self.w[open], "choices": (0.001, 1.0)}}

        def set_scale(self, name, weight):
            self.w[name] = weight
            self._zoo_kwargs["w" + name] = weight

    return TwoBlocks()


class _Blocks:
    @zoo.hookimpl
    def register_encoders(register):
        register("two-blocks", _two_blocks, modality="text", outputs=("pooled",), dim=12)


def _fruit(n, offset=0):
    words = ["red apple", "ripe banana", "sour lemon", "green pear"]
    return [{"text": f"{i + offset} {words[i % 4].split()[1]}", "label": words[i % 4].split()[1]}
            for i in range(n)]


@pytest.mark.parametrize("start,open,want", [({"wb": 0.001}, "b", 1.0),
                                             ({"wa": 1.0}, "a", 0.001)])
def test_an_encoders_open_block_weight_is_chosen_on_eval_and_saved(register_plugin, tmp_path,
                                                                   start, open, want):
    """The informative block at 0.001 is raised to 1.0 (the regression cannot use it
    below the noise); the noise block is lowered to 0.001 (its noise only raises the eval
    log-loss, and the rule keeps the least). The cache is rescaled with it: the saved
    model, encoding afresh at the chosen weight, scores the recorded eval accuracy."""
    register_plugin(_Blocks, "blocks")
    train, val = _fruit(48), _fruit(24, offset=1000)
    torch.manual_seed(0)
    model = compose("classification", {"text": {"name": "two-blocks", "open": open, **start}},
                    head={"name": "classification", "labels": LABELS},
                    fusion={"name": "concat-mlp", "dim": 16})
    summary = zoo.train(model, train, val, tmp_path / "m", epochs=1, lr=0.0, freeze="all",
                        progress=False, loggers=[])
    init = summary["probe_init"]
    assert init["scales"] == {"text": {open: want}}
    back = zoo.load(tmp_path / "m")
    assert back.encoders["text"].w[open] == want
    preds = back.predict([{"text": r["text"]} for r in val])
    acc = np.mean([p["label"] == r["label"] for p, r in zip(preds, val)])
    assert acc == pytest.approx(init["eval_accuracy"], abs=1e-6)
    if open == "b":
        assert acc == 1.0


def test_applying_chosen_scales_rescales_shared_and_sparse_cached_rows():
    """A resumed run re-caches at the built weights, then applies the recorded choice:
    rows shared by examples with one input are scaled once, sparse rows stay sparse."""
    from zoo.training.cache import apply_scales

    model = zoo.create_model("tfidf-text-clf")
    enc = model.encoders["text"]
    texts = ["Кошки сидели на коврах.", "Собаки спали у дверей дома.", "Мы любим кошек."]
    enc.fit(texts)
    assert enc.scale_choices()["lemma"]["weight"] == 0.5
    from zoo.training.cache import _rows

    pooled = enc.preprocess(texts)["tfidf"]
    rows = [{"text": r} for r in _rows(enc(tfidf=pooled), 3)]
    rows.append({"text": rows[0]["text"]})  # a fourth example with the first one's input
    assert rows[0]["text"]["pooled"].is_sparse
    apply_scales(model, {"text": {"lemma": 0.25}}, rows, None)
    assert enc.lemma_weight == 0.25 and enc.config()["lemma_weight"] == 0.25
    fresh = enc.preprocess(texts)["tfidf"]
    assert not torch.equal(fresh, pooled)
    for i, r in enumerate(rows):
        assert r["text"]["pooled"].is_sparse
        torch.testing.assert_close(r["text"]["pooled"].to_dense(), fresh[i % 3])


def test_a_resumed_run_applies_the_chosen_weight_again(register_plugin, tmp_path,
                                                        monkeypatch):
    """--resume rebuilds the encoder at its built weight and re-caches; the recorded choice
    is applied to both before the epochs go on, so the run ends as the uninterrupted one."""
    import json

    from zoo.training import loop

    register_plugin(_Blocks, "blocks")
    train, val = _fruit(48), _fruit(24, offset=1000)

    def model():
        torch.manual_seed(0)
        return compose("classification", {"text": {"name": "two-blocks", "wb": 0.001}},
                       head={"name": "classification", "labels": LABELS},
                       fusion={"name": "concat-mlp", "dim": 16})

    opts = dict(epochs=3, patience=5, freeze="all", progress=False, loggers=[])
    full = zoo.train(model(), train, val, tmp_path / "full", **opts)
    assert full["probe_init"]["scales"] == {"text": {"b": 1.0}}
    real = loop.train_epoch

    def crash(run, epoch):
        if epoch == 2:
            raise KeyboardInterrupt
        real(run, epoch)

    monkeypatch.setattr(loop, "train_epoch", crash)
    with pytest.raises(KeyboardInterrupt):
        zoo.train(model(), train, val, tmp_path / "cut", **opts)
    monkeypatch.setattr(loop, "train_epoch", real)
    seen = []
    monkeypatch.setattr(loop, "train_epoch", lambda run, epoch: (
        seen.append(run.cached[0]["text"]["pooled"][8:].clone()), real(run, epoch))[1])
    again = zoo.train(model(), train, val, tmp_path / "cut", resume=True, **opts)
    assert seen and seen[0].max() == 1.0  # the cache at the chosen weight, not 0.001
    assert again["best"] == full["best"]
    strip = lambda p: [{k: v for k, v in json.loads(x).items() if k != "seconds"}  # noqa
                       for x in (p / "metrics.jsonl").read_text().splitlines()]
    assert strip(tmp_path / "full") == strip(tmp_path / "cut")
    assert json.loads((tmp_path / "cut" / "config.json").read_text())[
        "encoders"]["text"]["kwargs"]["wb"] == 1.0


@pytest.mark.parametrize("bad,match", [
    ({"b": {"weight": 1.0, "choices": (0.5, 1.0)}}, r"needs 'columns'"),
    ({"b": {"columns": (8, 40), "weight": 1.0, "choices": (0.5, 1.0)}}, r"\[0, 12\)"),
    ({"b": {"columns": (8, 12), "weight": 1.0, "choices": (0.0, 1.0)}}, r"positive"),
    ([("b", (8, 12))], r"returned a list")])
def test_a_malformed_scale_choices_is_one_line_naming_the_encoder(register_plugin, tmp_path,
                                                                  monkeypatch, bad, match):
    """What scale_choices() returns is checked before the probe or a resume uses it: one
    PluginError naming the encoder, not a KeyError inside training."""
    from zoo.errors import PluginError

    register_plugin(_Blocks, "blocks")
    model = compose("classification", {"text": {"name": "two-blocks"}},
                    head={"name": "classification", "labels": LABELS},
                    fusion={"name": "concat-mlp", "dim": 16})
    enc = model.encoders["text"]
    monkeypatch.setattr(enc, "scale_choices", lambda: bad)
    with pytest.raises(PluginError, match=r"^encoder TwoBlocks: scale_choices\(\).*" + match) as e:
        zoo.train(model, _fruit(24), _fruit(12, offset=1000), tmp_path / "m", epochs=1,
                  freeze="all", progress=False, loggers=[])
    assert "\n" not in str(e.value)
    assert not (tmp_path / "m" / "model.safetensors").exists()
