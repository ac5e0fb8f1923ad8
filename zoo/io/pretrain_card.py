"""The model card of a pretrained encoder folder (``zoo pretrain --objective NAME``):
YAML front matter (library_name zoo, tags, base_model, the corpus) rendered through
``huggingface_hub.ModelCard`` from a Jinja template, and a body with the objective, its
settings, the corpus and the figures before and after."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

from zoo.io.markdown import inline_code as code, plain_text as text

__all__ = ["write_card", "TEMPLATE"]

TEMPLATE = Path(__file__).parent.parent / "cards" / "pretrain_card.md"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.1f}" if abs(v) >= 100 else f"{v:.4g}"
    return str(v)


def _rows(record: dict[str, Any]) -> list[tuple[str, str]]:
    corpus, tr = record["corpus"], record["training"]
    size = ", ".join(f"{corpus[k]} {k}" for k in ("examples", "tokens") if k in corpus)
    prov = record["objective_provider"]
    rows = [("objective", f"{code(record['objective'])} "
                          f"({text(prov['distribution'])} {text(prov['version'])})"),
            ("started from", _start(record)),
            ("corpus", f"{code(corpus['name'])}, sha256 {code(corpus['sha256'][:16])} (of "
                       f"the {text(corpus['sha256_of'])}), {text(size)}; {text(corpus['unit'])}")]
    rows += [(text(k.replace("_", " ")), text(_fmt(v))) for k, v in record["settings"].items()]
    rows += [("epochs", tr["epochs"]), ("batch size", tr["batch_size"]),
             ("learning rate", f"{tr['lr']:g} ({tr['optimizer']}, weight decay "
                               f"{tr['weight_decay']:g}; {tr['schedule']}, warm-up "
                               f"{tr['warmup']:g} of the steps)"),
             *[(f"{text(g['name'].replace('_', ' '))} learning rate",
                f"{g['lr']:g}, warm-up {g['warmup']:g} of its steps from step "
                f"{g['start_step']}") for g in tr.get("param_groups") or () if
               len(tr["param_groups"]) > 1],
             ("training loss by epoch", ", ".join(f"{x:.3f}" for x in tr["train_loss"])),
             ("seed", tr["seed"]), ("time", f"{tr['seconds']:.0f} s on {tr['device']}")]
    return [(k, _fmt(v)) for k, v in rows]


def _start(record: dict[str, Any]) -> str:
    enc = record["encoder"]
    what = code(enc["name"])
    if enc.get("weights"):
        what += f" with weights {code(enc['weights'])}"
    elif enc.get("initialised") == "random":
        what += " initialised at random (seeded)"
    if enc.get("sha256"):
        what += f" (sha256 {code(enc['sha256'][:16])})"
    if enc.get("base_model"):
        base = str(enc["base_model"])
        what += (f", i.e. [{text(base)}](https://huggingface.co/{quote(base, safe='/')})"
                 if re.fullmatch(r"[\w.-]+(/[\w.-]+)?", base) else f", i.e. {code(base)}")
    return what


def write_card(folder: Path, record: dict[str, Any], objective: Any, name: str) -> None:
    """Write ``folder/README.md`` for the pretrained encoder described by ``record``."""
    from huggingface_hub import ModelCard, ModelCardData

    enc, corpus = record["encoder"], record["corpus"]
    before, after = record["metrics"]["before"], record["metrics"]["after"]
    metrics = [(k, _fmt(before.get(k, "-")), _fmt(after.get(k, "-")))
               for k in dict.fromkeys([*before, *after])]
    modality = getattr(objective, "modality", None) or record.get("modality") or "data"
    data = ModelCardData(
        library_name="zoo", model_name=name, pipeline_tag=objective.pipeline_tag,
        tags=["zoo", modality, "pretraining", record["objective"], *objective.tags],
        base_model=enc.get("base_model") or None,
        # the base's licence carries over to what is derived from it
        license=enc.get("license") or None)
    # a local corpus is no Hub dataset id: the body describes it (name, sha256, size), and
    # the front matter keeps to the Hub's own keys
    held = record["eval"]
    held_text = (f"{held.get('examples', 0)} examples ({held['source']})"
                 + (f", {held['tokens']} tokens" if "tokens" in held else "")
                 + (f", {held['masked_tokens']} of them masked" if "masked_tokens" in held
                    else ""))
    card = ModelCard.from_template(
        data, template_path=str(TEMPLATE), title=text(name), start_text=_start(record),
        objective=text(record["objective"]), corpus_name=code(corpus["name"]),
        modality=modality, folder=re.sub(r"[^\w.\-/]", "_", name),
        pipeline_tag=objective.pipeline_tag, notes=list(objective.notes),
        rows=_rows(record), metrics=[(text(k), b, a) for k, b, a in metrics],
        held_text=text(held_text))
    (folder / "README.md").write_text(str(card), encoding="utf-8")
