"""Publishing through the real huggingface_hub client against a local Hub-compatible server
on 127.0.0.1 (no monkeypatching of huggingface_hub internals beyond its offline switch)."""
from __future__ import annotations

import json
import os

import pytest
import torch

import zoo
from conftest import run_zoo
from zoo.errors import LoadError, ZooError

from conftest import HUB_TOKEN as TOKEN


def _inputs(photo):
    return [{"text": "a cat on the sofa", "image": str(photo)}, {"text": "only text"}]


def _same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_push_to_hub_then_load_by_hub_id_is_bit_identical_and_large_weights_use_lfs(hub, photo):
    wide_bert = {"name": "bert-tiny", "hf_config": {
        "model_type": "bert", "vocab_size": 30522, "hidden_size": 96, "num_hidden_layers": 2,
        "num_attention_heads": 2, "intermediate_size": 192, "max_position_embeddings": 128}}
    model = zoo.create_model("tiny-text-image-clf", encoders={"text": wide_bert},
                             labels=["cat", "dog"])
    url = model.push_to_hub("zoo-tests/wide-tiny", commit_message="first")
    assert url.startswith(hub.url) and "/commit/" in url
    size = sum(f["size"] for f in _repo_files(hub, "zoo-tests/wide-tiny").values()
               if f["path"].endswith(".safetensors"))
    assert size > 10 * 1024 * 1024
    lfs_puts = [p for m, p in hub.state.requests if m == "PUT" and p.startswith("/_lfs/")]
    assert lfs_puts, "weights over 10 MB must go through the LFS batch API"
    loaded = zoo.load("hf-hub:zoo-tests/wide-tiny")
    assert _same_weights(model, loaded)
    # the commit whose file list was vetted is the one downloaded, and it is recorded
    from huggingface_hub import HfApi

    head = HfApi(endpoint=hub.url, token=TOKEN).model_info("zoo-tests/wide-tiny").sha
    assert loaded.hub_revision == head and len(head) == 40
    assert loaded.predict(_inputs(photo)) == model.predict(_inputs(photo))
    card_path = _download(hub, "zoo-tests/wide-tiny", "README.md")
    from huggingface_hub import ModelCard

    card = ModelCard.load(card_path)
    assert card.data.library_name == "zoo" and "zoo" in card.data.tags
    assert card.data.pipeline_tag is None  # text + image: no Hub tag fits, none is better
    assert 'zoo.load("hf-hub:zoo-tests/wide-tiny")' in card.text
    assert "pip install zoo-mm zoo-text-hf zoo-vision-timm" in card.text


def _repo_files(hub, repo_id, rev="main"):
    repo = hub.state.repos[repo_id]
    sha = repo["refs"][rev]
    return {p: {"path": p, **f} for p, f in repo["commits"][sha]["files"].items()}


def _download(hub, repo_id, filename, revision=None):
    from huggingface_hub import hf_hub_download

    return hf_hub_download(repo_id, filename, revision=revision, endpoint=hub.url,
                           cache_dir=os.environ["HF_HUB_CACHE"], token=TOKEN)


def test_zoo_push_cli_revisions_and_load_at_a_revision(hub, photo, tmp_path):
    a = zoo.create_model("tiny-text-image-clf", labels=["cat", "dog"])
    b = zoo.create_model("tiny-text-image-clf", labels=["cat", "dog"], fusion="gated")
    a.save_pretrained(tmp_path / "a")
    b.save_pretrained(tmp_path / "b")
    run_zoo("push", str(tmp_path / "a"), "zoo-tests/rev", "--message", "v0", env=hub.env,
            check=True)
    proc = run_zoo("push", str(tmp_path / "b"), "zoo-tests/rev", "--revision", "v1",
                   env=hub.env, check=True)
    assert "/commit/" in proc.stdout
    main, v1 = zoo.load("hf-hub:zoo-tests/rev"), zoo.load("hf-hub:zoo-tests/rev@v1")
    assert main.predict(_inputs(photo)) == a.predict(_inputs(photo))
    assert v1.predict(_inputs(photo)) == b.predict(_inputs(photo))
    assert v1.config["fusion"]["name"] == "gated" and main.config["fusion"]["name"] == "concat-mlp"
    pulled = run_zoo("pull", "zoo-tests/rev", "--revision", "v1", "--out",
                     str(tmp_path / "pulled"), env=hub.env, check=True)
    assert zoo.load(pulled.stdout.strip()).predict(_inputs(photo)) == b.predict(_inputs(photo))


def test_an_interrupted_upload_publishes_nothing_and_a_retry_succeeds(hub, photo):
    model = zoo.create_model("tiny-text-image-clf")
    hub.state.fail_next_commits = 1
    with pytest.raises(ZooError, match="push to zoo-tests/flaky failed"):
        model.push_to_hub("zoo-tests/flaky")
    assert _repo_files(hub, "zoo-tests/flaky") == {}  # the repo exists, empty: no half model
    with pytest.raises(LoadError):
        zoo.load("hf-hub:zoo-tests/flaky")
    model.push_to_hub("zoo-tests/flaky")
    assert zoo.load("hf-hub:zoo-tests/flaky").predict(_inputs(photo)) == \
        model.predict(_inputs(photo))


def test_a_bad_token_gets_a_clear_401_error(hub, monkeypatch, tmp_path):
    zoo.create_model("tiny-text-image-clf").save_pretrained(tmp_path / "m")
    proc = run_zoo("push", str(tmp_path / "m"), "zoo-tests/denied",
                   env={**hub.env, "HF_TOKEN": "hf_wrong"})
    assert proc.returncode == 1
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("error: push to zoo-tests/denied failed") and "HF_TOKEN" in line
    assert "zoo-tests/denied" not in hub.state.repos


def test_tampered_repos_fail_safely(hub, photo, tmp_path):
    from huggingface_hub import HfApi

    api = HfApi(endpoint=hub.url, token=TOKEN)
    model = zoo.create_model("tiny-text-image-clf")
    model.push_to_hub("zoo-tests/tamper")
    folder = tmp_path / "m"
    model.save_pretrained(folder)

    # a pickle beside the weights
    api.create_repo("zoo-tests/pickle")
    api.upload_folder(folder_path=str(folder), repo_id="zoo-tests/pickle")
    api.upload_file(path_or_fileobj=b"\x80\x04not a model", path_in_repo="pytorch_model.bin",
                    repo_id="zoo-tests/pickle")
    with pytest.raises(LoadError, match="pickle or code file.*pytorch_model.bin"):
        zoo.load("hf-hub:zoo-tests/pickle")

    # weights whose sha256 does not match config.json
    other = tmp_path / "other"
    zoo.create_model("tiny-text-image-clf").save_pretrained(other)
    api.upload_file(path_or_fileobj=str(other / "model.safetensors"),
                    path_in_repo="model.safetensors", repo_id="zoo-tests/tamper")
    with pytest.raises(LoadError, match="does not match the sha256"):
        zoo.load("hf-hub:zoo-tests/tamper")

    # a config naming a component no installed plugin provides
    cfg = json.loads((folder / "config.json").read_text())
    cfg["encoders"]["image"].update(name="vit-huge", distribution="zoo-vision-fancy",
                                    version="9.9")
    api.create_repo("zoo-tests/unknown")
    api.upload_folder(folder_path=str(folder), repo_id="zoo-tests/unknown")
    api.upload_file(path_or_fileobj=json.dumps(cfg).encode(), path_in_repo="config.json",
                    repo_id="zoo-tests/unknown")
    with pytest.raises(LoadError, match="pip install zoo-vision-fancy"):
        zoo.load("hf-hub:zoo-tests/unknown")

    # a file list that points outside the repo (a hostile server)
    repo = hub.state.repos["zoo-tests/unknown"]
    head = repo["refs"]["main"]
    repo["commits"][head]["files"]["../../evil.json"] = dict(
        repo["commits"][head]["files"]["config.json"])
    with pytest.raises(LoadError, match="unsafe path"):
        zoo.load("hf-hub:zoo-tests/unknown")


def test_after_train_and_eval_the_pushed_card_carries_the_measured_figures(hub, tmp_path):
    from huggingface_hub import metadata_load

    from zoo.build.compose import compose
    from zoo.testing.synthetic import digits_manifests

    data = digits_manifests(tmp_path / "digits", size=32, limit=150)
    model = compose("classification", {"image": {"name": "timm-tiny", "data_config": {
        "input_size": [3, 32, 32]}}}, {"name": "classification", "labels": ["x"]}, "concat-mlp")
    out = tmp_path / "run"
    zoo.train(model, data["train"], data["val"], out, epochs=2, freeze="all", progress=False)
    result = json.loads(run_zoo("eval", str(out), "--data", str(data["test"]), "--json",
                                "--record", env=hub.env, check=True).stdout)
    run_zoo("push", str(out), "zoo-tests/trained", env=hub.env, check=True)
    meta = metadata_load(_download(hub, "zoo-tests/trained", "README.md"))
    results = meta["model-index"][0]["results"]
    values = {m["type"]: m["value"] for r in results for m in r["metrics"]}
    assert values["accuracy"] == pytest.approx(round(result["accuracy"], 4))
    # local manifests are no Hub dataset ids: described in the body with size and hash
    assert "datasets" not in meta and meta["library_name"] == "zoo"
    assert meta["pipeline_tag"] == "image-classification"
    card = _download(hub, "zoo-tests/trained", "README.md")
    text = open(card).read()
    assert "`train.jsonl`, " in text and "sha256 `" in text and "pip install zoo-mm" in text
    files = _repo_files(hub, "zoo-tests/trained")
    assert {"training_curves.png", "confusion_matrix.png", "README.md"} <= set(files)
    assert not any(f.startswith("train_state") or f == "metrics.jsonl" for f in files)
    # push_to_hub() publishes exactly what `zoo push DIR` does: same files, same bytes
    run_zoo("push", str(out), "zoo-tests/both", "--revision", "cli", env=hub.env, check=True)
    zoo.load(out).push_to_hub("zoo-tests/both", revision="api")
    cli, api = _repo_files(hub, "zoo-tests/both", "cli"), _repo_files(hub, "zoo-tests/both", "api")
    assert set(cli) == set(api) and "eval_results.json" in api
    for name in sorted(cli):
        a = open(_download(hub, "zoo-tests/both", name, revision="cli"), "rb").read()
        b = open(_download(hub, "zoo-tests/both", name, revision="api"), "rb").read()
        assert a == b, name


def test_cards_list_every_pretrained_part_as_base_model(tmp_path):
    from huggingface_hub import ModelCard

    m = zoo.create_model("minilm-effnet-clf", pretrained=True)
    card = ModelCard.load(m.save_pretrained(tmp_path / "m") / "README.md")
    assert card.data.base_model == ["sentence-transformers/all-MiniLM-L6-v2",
                                    "timm/tf_efficientnet_lite0.in1k"]
    assert card.data.pipeline_tag is None  # text + image classification: no tag fits
    assert {"text", "image", "multimodal"} <= set(card.data.tags)


def test_a_pretrained_alignment_round_trips_through_the_hub(hub, photo):
    from zoo.build.compose import compose

    model = compose("retrieval", {"image": {"name": "timm-tiny", "data_config": {
        "input_size": [3, 32, 32]}}, "text": "bert-tiny"}, {"name": "contrastive", "dim": 16},
        name="tiny-clip")
    model.push_to_hub("zoo-tests/tiny-clip")
    loaded = zoo.load("hf-hub:zoo-tests/tiny-clip")
    assert _same_weights(model, loaded)
    labels = ["a cat", "a dog", "a car"]
    assert loaded.zero_shot([{"image": str(photo)}], labels=labels) == \
        model.zero_shot([{"image": str(photo)}], labels=labels)
    from huggingface_hub import ModelCard

    card = ModelCard.load(_download(hub, "zoo-tests/tiny-clip", "README.md"))
    assert card.data.pipeline_tag == "feature-extraction"


def test_leftovers_of_a_killed_save_are_never_pushed(hub, tmp_path):
    from zoo.io.hub import push_folder

    folder = zoo.create_model("tiny-text-image-clf", labels=["a", "b"]).save_pretrained(
        tmp_path / "m")
    (folder / ".zoo-save-dead").mkdir()  # a save killed before its commit point
    (folder / ".zoo-save-dead" / "config.json").write_text("{}")
    (folder / ".zoo-trash-x").mkdir()
    (folder / ".zoo-trash-x" / "model.safetensors").write_bytes(b"old")
    push_folder(folder, "zoo-tests/leftovers")
    names = set(_repo_files(hub, "zoo-tests/leftovers"))
    assert "config.json" in names and not [n for n in names if ".zoo-" in n]
    assert zoo.load("hf-hub:zoo-tests/leftovers") is not None
