"""zoo.data.formats.read_any: one small data set in every shape reads to the same examples;
bad data gives one-line errors."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from zoo.data.formats import read_any
from zoo.errors import DataError

ITEMS = [("cat", 0), ("cat", 1), ("dog", 0), ("dog", 1), ("dog", 2)]


@pytest.fixture
def imagefolder(tmp_path) -> Path:
    from PIL import Image

    root = tmp_path / "pets" / "train"
    for label, k in ITEMS:
        (root / label).mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((4, 4, 3), 40 * k, np.uint8)).save(root / label / f"{k}.png")
    return root


def _rows(root: Path) -> list[dict]:
    return [{"image": f"{label}/{k}.png", "label": label} for label, k in ITEMS]


def _key(examples):
    return sorted((json.dumps(e.inputs, sort_keys=True), json.dumps(e.targets, sort_keys=True))
                  for e in examples)


def _expected(root: Path):
    return _key(read_any(root)[0])


def _write_csv(path: Path, rows: list[dict], delimiter=",", rename=None):
    rename = rename or {}
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, [rename.get(k, k) for k in rows[0]], delimiter=delimiter)
        w.writeheader()
        w.writerows({rename.get(k, k): v for k, v in r.items()} for r in rows)


def test_imagefolder(imagefolder):
    examples, cats, name = read_any(imagefolder)
    assert cats == ["cat", "dog"] and name == "train" and len(examples) == 5
    ex = examples[0]
    assert ex.targets == {"label": "cat"} and Path(ex.inputs["image"]).is_file()
    assert Path(ex.inputs["image"]).is_absolute()


@pytest.mark.parametrize("suffix,delimiter", [(".csv", ","), (".tsv", "\t"), (".txt", "\t"),
                                              (".txt", ",")])
def test_tables_match_imagefolder(imagefolder, suffix, delimiter):
    path = imagefolder / f"data{suffix}"
    _write_csv(path, _rows(imagefolder), delimiter)
    examples, cats, name = read_any(path)
    assert _key(examples) == _expected(imagefolder) and name == "data"


def test_columns_rename(imagefolder):
    path = imagefolder / "data.csv"
    _write_csv(path, _rows(imagefolder), rename={"image": "img_path", "label": "species"})
    examples, _, _ = read_any(path, columns={"image": "img_path", "label": "species"})
    assert _key(examples) == _expected(imagefolder)


def test_jsonl_and_columns(imagefolder):
    path = imagefolder / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _rows(imagefolder)))
    assert _key(read_any(path)[0]) == _expected(imagefolder)
    path.write_text("".join(json.dumps({"img": r["image"], "y": r["label"]}) + "\n"
                            for r in _rows(imagefolder)))
    assert _key(read_any(path, columns={"image": "img", "label": "y"})[0]) == \
        _expected(imagefolder)


def test_parquet(imagefolder):
    pa = pytest.importorskip("pyarrow", reason="pyarrow not installed")
    import pyarrow.parquet as pq

    rows = _rows(imagefolder)
    pq.write_table(pa.Table.from_pylist(rows), imagefolder / "data.parquet")
    assert _key(read_any(imagefolder / "data.parquet")[0]) == _expected(imagefolder)


def test_hf_datasets(imagefolder, tmp_path):
    datasets = pytest.importorskip("datasets", reason="datasets not installed")
    import pyarrow as pa

    rows = _rows(imagefolder)
    feats = datasets.Features({"image": datasets.Value("string"),
                               "label": datasets.ClassLabel(names=["cat", "dog"])})
    table = pa.table({"image": [str(imagefolder / r["image"]) for r in rows],
                      "label": [["cat", "dog"].index(r["label"]) for r in rows]})
    ds = datasets.Dataset(table, info=datasets.DatasetInfo(features=feats), fingerprint="t")
    examples, cats, _ = read_any(ds)
    assert _key(examples) == _expected(imagefolder) and cats == ["cat", "dog"]
    ds.save_to_disk(str(tmp_path / "saved"))
    examples, cats, name = read_any(tmp_path / "saved")
    assert _key(examples) == _expected(imagefolder) and cats == ["cat", "dog"]
    feats["image"] = datasets.Image()  # an Image feature: read back as its paths
    structs = [{"bytes": None, "path": p} for p in table["image"].to_pylist()]
    table = pa.table({"image": structs, "label": table["label"]}, schema=feats.arrow_schema)
    img = datasets.Dataset(table, info=datasets.DatasetInfo(
        features=feats), fingerprint="i")
    assert _key(read_any(img)[0]) == _expected(imagefolder)


def test_torchvision_imagefolder(imagefolder):
    tv = pytest.importorskip("torchvision")
    folder = tv.datasets.ImageFolder(str(imagefolder))
    examples, cats, name = read_any(folder)
    assert _key(examples) == _expected(imagefolder) and cats == ["cat", "dog"]
    assert name == "train"


def test_list_and_torch_dataset(imagefolder):
    rows = [{"image": str(imagefolder / r["image"]), "label": r["label"]}
            for r in _rows(imagefolder)]
    assert _key(read_any(rows)[0]) == _expected(imagefolder)
    assert _key(read_any(iter(rows))[0]) == _expected(imagefolder)

    class Dataset:  # map-style, as torch.utils.data.Dataset
        def __len__(self):
            return len(rows)

        def __getitem__(self, i):
            return rows[i]

    assert _key(read_any(Dataset())[0]) == _expected(imagefolder)


def test_label_types_kept(tmp_path):
    rows = [{"text": "good", "label": 1}, {"text": "bad", "label": 0}]
    assert [e.targets["label"] for e in read_any(rows)[0]] == [1, 0]
    _write_csv(tmp_path / "t.csv", rows)
    examples = read_any(tmp_path / "t.csv")[0]
    assert [e.targets["label"] for e in examples] == [1, 0]
    assert [e.inputs["text"] for e in examples] == ["good", "bad"]


def test_audiofolder(tmp_path):
    import soundfile as sf

    root = tmp_path / "speech"
    root.mkdir()
    for i in range(2):
        sf.write(root / f"{i}.wav", np.zeros(800, "float32"), 8000)
    _write_csv(root / "metadata.csv", [{"file_name": "0.wav", "transcript": "hi", "label": 3},
                                       {"file_name": "1.wav", "transcript": "yo", "label": 4}])
    examples, cats, name = read_any(root)
    assert cats is None and name == "speech"
    assert [e.inputs for e in examples] == [{"audio": str(root / "0.wav")},
                                            {"audio": str(root / "1.wav")}]
    assert [e.targets for e in examples] == [{"transcript": "hi", "label": 3},
                                             {"transcript": "yo", "label": 4}]


def _one_line(excinfo) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg
    return msg


def test_wrong_column_did_you_mean(imagefolder):
    path = imagefolder / "data.csv"
    _write_csv(path, _rows(imagefolder), rename={"label": "sentiment"})
    with pytest.raises(DataError) as e:
        read_any(path, columns={"label": "sentimnet"})
    msg = _one_line(e)
    assert str(path) in msg and "'sentimnet'" in msg and "image, sentiment" in msg
    assert "did you mean 'sentiment'" in msg


def test_bad_row_file_line(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text('text,label\ngood,1\n"multi\nline",0\nbad,1,extra\nfine,0\n')
    with pytest.raises(DataError) as e:
        read_any(path)
    assert _one_line(e).startswith(f"{path}:5: 3 fields, the header has 2")
    errors: list = []
    examples, _, _ = read_any(path, on_bad_data="skip", errors=errors)
    assert [ex.line for ex in examples] == [2, 3, 6] and [ln for ln, _ in errors] == [5]
    assert examples[1].inputs["text"] == "multi\nline"


def test_csv_in_jsonl(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text("text,label\ngood,1\n")
    with pytest.raises(DataError) as e:
        read_any(path)
    assert "looks like CSV" in _one_line(e) and "data.csv" in str(e.value)


def test_tuple_items(imagefolder):
    items = [(np.zeros((4, 4, 3)), 0), (np.ones((4, 4, 3)), 1)]
    with pytest.raises(DataError) as e:
        read_any(items)
    assert "columns" in _one_line(e) and "tuple" in str(e.value)
    examples, _, _ = read_any(items, columns={"image": "0", "label": "1"})
    assert [ex.targets for ex in examples] == [{"label": 0}, {"label": 1}]


def test_missing_optional_library(tmp_path, monkeypatch):
    import builtins

    real = builtins.__import__

    def no_arrow(name, *a, **k):
        if name.split(".")[0] in ("pyarrow", "pandas", "datasets"):
            raise ImportError(name)
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_arrow)
    (tmp_path / "x.parquet").write_bytes(b"PAR1")
    with pytest.raises(DataError, match="pip install pyarrow") as e:
        read_any(tmp_path / "x.parquet")
    _one_line(e)
    (tmp_path / "saved").mkdir()
    (tmp_path / "saved" / "state.json").write_text("{}")
    with pytest.raises(DataError, match="pip install datasets"):
        read_any(tmp_path / "saved")


@pytest.mark.slow
def test_the_same_data_as_imagefolder_csv_and_jsonl_trains_to_the_same_metrics(tmp_path):
    """Through the CLI: an ImageFolder tree, a CSV with its own column names (--column) and
    a JSONL manifest holding the same images in the same order give the same model."""
    import json as _json

    from PIL import Image
    from sklearn.datasets import load_digits

    from conftest import run_zoo
    from zoo.build.compose import compose

    digits = load_digits()
    tree, rows = tmp_path / "tree", []
    for cls in (0, 1):
        (tree / str(cls)).mkdir(parents=True)
        for k, i in enumerate([j for j in range(200) if digits.target[j] == cls][:8]):
            path = tree / str(cls) / f"{k:02d}.png"
            Image.fromarray((digits.images[i] * 16).astype("uint8")).save(path)
            rows.append((f"tree/{cls}/{k:02d}.png", cls))
    (tmp_path / "data.csv").write_text("path,digit\n" + "".join(f"{p},{c}\n" for p, c in rows))
    (tmp_path / "data.jsonl").write_text("".join(_json.dumps({"image": p, "label": str(c)})
                                                 + "\n" for p, c in rows))
    init = tmp_path / "init"
    compose("classification", {"image": {"name": "timm-tiny", "data_config": {
        "input_size": [3, 32, 32]}}}, {"name": "classification", "labels": ["?"]},
        {"name": "concat-mlp", "dim": 16}).save_pretrained(init)
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"path": [p for p, _ in rows], "digit": [c for _, c in rows]}),
                   tmp_path / "data.parquet")
    # a datasets folder with the images embedded and ClassLabel names
    ds = datasets.Dataset.from_dict(
        {"image": [Image.open(tmp_path / p).copy() for p, _ in rows], "label": [c for _, c in rows]},
        features=datasets.Features({"image": datasets.Image(),
                                    "label": datasets.ClassLabel(names=["0", "1"])}))
    ds.save_to_disk(str(tmp_path / "hf"))
    assert ds.with_format("arrow")[:1].to_pylist()[0]["image"]["path"] is None  # bytes only
    arrow = sorted((tmp_path / "hf").glob("*.arrow"))
    assert len(arrow) == 1
    results = {}
    for name, data, extra in (("tree", tree, []), ("csv", tmp_path / "data.csv",
                                                   ["--column", "image=path",
                                                    "--column", "label=digit"]),
                              ("parquet", tmp_path / "data.parquet",
                               ["--column", "image=path", "--column", "label=digit"]),
                              ("hf", tmp_path / "hf", []), ("arrow", arrow[0], []),
                              ("jsonl", tmp_path / "data.jsonl", [])):
        proc = run_zoo("train", str(init), "--train", str(data), "--eval", str(data),
                       "--out", str(tmp_path / name), "--epochs", "3", "--freeze", "all",
                       "--quiet", *extra)
        assert proc.returncode == 0, proc.stderr
        results[name] = _json.loads(proc.stdout)["best"]
        assert zoo_labels(tmp_path / name) == ["0", "1"]
    assert all(r == results["tree"] for r in results.values()), results
    # the Python API, handed the Dataset object itself, trains to the same metrics
    import zoo

    api = zoo.train(zoo.load(init), datasets.load_from_disk(str(tmp_path / "hf")),
                    datasets.load_from_disk(str(tmp_path / "hf")), tmp_path / "api",
                    epochs=3, freeze="all", progress=False)
    assert api["best"] == results["tree"]
    assert zoo_labels(tmp_path / "api") == ["0", "1"]


def zoo_labels(folder):
    import json as _json

    return _json.loads((folder / "config.json").read_text())["labels"]
