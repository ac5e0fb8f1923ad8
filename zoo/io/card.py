"""Model cards rendered from ``cards/model_card.md`` through huggingface_hub's
``ModelCard.from_template`` + ``ModelCardData``, with ``EvalResult`` entries for
``model-index`` read from ``eval_results.json``."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from zoo.io.card_sections import calibration_text as _calibration_text
from zoo.io.card_sections import fmt as _fmt
from zoo.io.card_sections import other_evals as _other_evals
from zoo.io.card_sections import read_json as _read_json
from zoo.io.card_sections import robustness as _robustness
from zoo.io.card_sections import shown as _shown
from zoo.io.card_sections import slices as _slices
from zoo.io.card_sections import tune_section as _tune_section
from zoo.io.markdown import inline_code as code, plain_text as text
from zoo.io.records import eval_entries

__all__ = ["render_card", "write_card", "pipeline_tag", "TEMPLATE"]

TEMPLATE = Path(__file__).parent.parent / "cards" / "model_card.md"
_METRIC_TYPES = {"f1_macro": "f1", "map_50": "map", "map_75": "map"}


def _task(name: str) -> Any:
    """The registered task, or a bare Task when its plugin is not installed here."""
    from zoo.base.task import Task
    from zoo.errors import ZooError
    from zoo.registry import get_task

    try:
        return get_task(name)
    except ZooError:
        return Task()


def pipeline_tag(task: str, modalities: list[str]) -> str | None:
    """The Hub pipeline tag the task gives these modalities (None when none fits)."""
    return _task(task).pipeline_tag(modalities)


def _weights_info(config: dict[str, Any]) -> tuple[list[str], list[str], list[str]]:
    """(Hub ids of the base models, licences, weight tags) over every part with weights."""
    from zoo.errors import ZooError
    from zoo.registry import get_registry

    hub_ids, licenses, names = [], [], []
    parts = [*config["encoders"].values(), config.get("fusion"), config.get("head")]
    for part in parts:
        adapted = (part or {}).get("base_model"), (part or {}).get("license")
        if isinstance(adapted[0], str) and adapted[0] and adapted[0] not in hub_ids:
            hub_ids.append(adapted[0])  # an encoder zoo pretrain adapted: its base carries
        if isinstance(adapted[1], str) and adapted[1]:
            licenses.append(adapted[1])
        tag = (part or {}).get("weights")
        if not isinstance(tag, str) or tag.startswith(("trained", "aligned:", "unknown")):
            continue
        names.append(_public(tag))
        try:
            spec = get_registry().weights(tag)
        except ZooError:
            continue
        hub = spec.base_model or next((s[len("hf-hub:"):].split("@")[0] for s in spec.sources
                                       if s.startswith("hf-hub:")), None)
        if hub and hub not in hub_ids:
            hub_ids.append(hub)
        if spec.license:
            licenses.append(spec.license)
    return hub_ids, licenses, names


def _probe_text(init: dict[str, Any] | None) -> str:
    if not init:
        return "random"
    if init.get("description"):  # the task's own words for its closed-form start
        return text(init["description"])
    acc = init.get("eval_accuracy")
    return (f"logistic regression fitted by L-BFGS (C {init.get('C')}"
            + (f", eval accuracy {acc:.4f}" if acc is not None else "")
            + "), refined at lr / 3")


def _data_text(training: dict[str, Any], split: str) -> str:
    """A local data set described by name, size and content hash (not a Hub id)."""
    path, n = training.get(f"{split}_data"), training.get(f"n_{split}", 0)
    digest = training.get(f"{split}_sha256")
    out = f"{code(Path(str(path)).name)}, " if path else ""
    out += f"{text(n)} examples"
    return out + (f", sha256 {code(str(digest)[:16])}" if digest else "")


def _distributions(plugins: Any) -> list[str]:
    """Distribution names from config.json's ``plugins``, only those that look like one
    (an untrusted file is never echoed into an install command)."""
    import re

    names = []
    for p in plugins if isinstance(plugins, list) else []:
        d = p.get("distribution") if isinstance(p, dict) else None
        if isinstance(d, str) and re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$", d):
            names.append(d)
    return names


def _composition_text(config: dict[str, Any]) -> str:
    out = " + ".join(code(e["name"]) for e in config["encoders"].values())
    if config.get("fusion"):
        out += f" -> {code(config['fusion']['name'])} fusion"
    if config.get("head"):
        out += f" -> {code(config['head']['name'])} head"
    return out + "."


def _adapter_text(config: dict[str, Any]) -> str:
    """What a LoRA adapter needs: its settings and the base weights it is pinned to."""
    a = config.get("adapter")
    if not isinstance(a, dict) or not isinstance(a.get("base"), dict):
        return ""
    pins = ", ".join(f"{text(m)}: {code(p.get('weights'))} (sha256 "
                     f"{code(str(p.get('sha256'))[:16])})"
                     for m, p in a["base"].items() if isinstance(p, dict))
    return (f"LoRA (r={text(a.get('r'))}, alpha={text(a.get('alpha'))}) on the pretrained encoders; "
            f"`model.safetensors` holds only the adapter, fusion and head. Base weights, "
            f"pinned: {pins}. `zoo.load` rebuilds the base from the installed plugin's "
            f"weights, checks the pin, then adds the adapter.")


def _card_data(config: dict[str, Any], spec: Any, evals: dict[str, Any] | None,
               training: dict[str, Any] | None, name: str) -> tuple[Any, dict[str, str],
                                                                    dict[str, Any]]:
    """The YAML front matter (``ModelCardData`` with ``model-index``), the metric display
    names and the figures shown."""
    from huggingface_hub import EvalResult, ModelCardData

    task, modalities = config["task"], list(config["encoders"])
    hub_ids, licenses, _ = _weights_info(config)
    tag = spec.pipeline_tag(modalities)
    figures = (evals or {}).get("metrics") or {}
    names = {**{k: k for k in figures}, **spec.metric_names}
    metrics = _shown(figures, names)
    eval_results = []
    for entry in eval_entries(evals):  # the training's eval split, then zoo eval --record's
        dataset = entry.get("dataset") or "eval"
        shown = _shown(entry.get("metrics") or {}, {**names, **spec.metric_names})
        eval_results += [EvalResult(task_type=tag or task, dataset_type=dataset,
                                    dataset_name=dataset, metric_type=_METRIC_TYPES.get(k, k),
                                    metric_name=names.get(k, k), metric_value=round(float(v), 4))
                         for k, v in shown.items()]
    # only real Hub dataset ids belong under `datasets:`; local files are described below
    datasets = sorted({d for d in ((training or {}).get("train_dataset_id"),
                                   (training or {}).get("eval_dataset_id")) if d}) or None
    tags = ["zoo", *modalities, task] + (["multimodal"] if len(modalities) > 1 else [])
    data = ModelCardData(
        library_name="zoo", tags=tags, pipeline_tag=tag,
        license=(licenses[0] if len(set(licenses)) == 1 else "other" if licenses else None),
        base_model=hub_ids or None, datasets=datasets, model_name=name,
        language=_language((training or {}).get("language")),
        eval_results=eval_results or None)
    return data, names, metrics


def _public(tag: Any) -> Any:
    """A weights tag as the card may show it: ``source:<folder>`` names the folder only,
    never where it lay on the machine that trained the model."""
    if isinstance(tag, str) and tag.startswith("source:"):
        where = tag[len("source:"):]
        if where.startswith(("/", "~", ".")) or "\\" in where or Path(where).exists():
            return f"source: folder {Path(where).name}"
    return tag


def _language(code_: Any) -> str | None:
    """An ISO 639 code from the training record (a language identifier's guess)."""
    import re

    return code_ if isinstance(code_, str) and re.fullmatch(r"[a-z]{2,3}", code_) else None


def _composition(config: dict[str, Any]) -> list[dict[str, str]]:
    rows = []
    for m, enc in config["encoders"].items():
        rows.append({"part": text(f"encoder ({m})"), "name": code(enc["name"]),
                     "provider": text(f"{enc.get('distribution')} {enc.get('version', '')}"),
                     "settings": text(f"weights: {_public(enc.get('weights')) or 'trained here'}"
                                      + (f" (adapted from {enc['base_model']})"
                                         if enc.get("base_model") else ""))})
    for part in ("fusion", "head"):
        c = config.get(part)
        if c:
            kw = {k: v for k, v in (c.get("kwargs") or {}).items() if k != "labels"}
            rows.append({"part": part, "name": code(c["name"]),
                         "provider": text(f"{c.get('distribution')} {c.get('version', '')}"),
                         "settings": text(", ".join(f"{k}={v}" for k, v in kw.items()),
                                          limit=120)})
    return rows


def _training_rows(training: dict[str, Any] | None, config: dict[str, Any]
                   ) -> list[tuple[str, Any]]:
    """What the training record says, each row only where it applies: the encoder
    learning rate only when pretrained encoders were fine-tuned, the probe start only
    when a probe on cached features ran."""
    if not training:
        return []
    cfg = training.get("config", {})
    frozen = training.get("frozen") or []
    pretrained = [m for m, e in config["encoders"].items() if e.get("weights")]
    tuned = [m for m in pretrained if m not in frozen or training.get("finetuned")]
    rows = [("training data", _data_text(training, "train")),
            ("eval data", _data_text(training, "eval")),
            ("epochs", text(cfg.get("epochs"))),
            ("best epoch", text(training.get("best_epoch"))
                            + (" (the closed-form probe start)" if training.get("best_epoch") == 0
                               else "")),
            ("batch size", text(cfg.get("batch_size"))), ("learning rate", text(cfg.get("lr")))]
    if tuned:
        rows.append(("encoder learning rate", text(f"{cfg.get('encoder_lr') or 'lr / 10'} "
                                                   f"(fine-tuned: {', '.join(tuned)})")))
    rows.append(("frozen encoders", text(", ".join(map(str, frozen)) or "none")))
    if training.get("feature_cache"):
        rows += [("feature cache", True),
                 ("probe start", _probe_text(training.get("probe_init")))]
    rows += [("processes", text(training.get("world_size", 1))), ("seed", text(cfg.get("seed")))]
    return rows


def _example(modalities: list[str]) -> str:
    """The usage snippet's input: each modality's own example (``Modality.card_example``)."""
    from zoo.errors import ZooError
    from zoo.registry import get_modality

    parts = []
    for m in modalities:
        try:
            parts.append(get_modality(m).card_example)
        except ZooError:  # a modality whose plugin is not installed here
            parts.append(f'"{m}": ...')
    return "{" + ", ".join(parts) + "}"


def render_card(directory: str | Path, repo_id: str | None = None) -> str:
    from urllib.parse import quote

    from huggingface_hub import ModelCard

    from zoo.registry.manager import CORE_DISTRIBUTION

    d = Path(directory)
    config = _read_json(d / "config.json")  # the folder was checked by whoever saves it
    if config is None or not isinstance(config.get("encoders"), dict):
        from zoo.errors import LoadError

        raise LoadError(f"{d} holds no readable zoo config.json; save the model first")
    modalities = list(config["encoders"])
    training, evals = _read_json(d / "training.json"), _read_json(d / "eval_results.json")
    spec = _task(config["task"])
    name = repo_id.split("/")[-1] if repo_id else config.get("name", "zoo-model")
    card_data, names, metrics = _card_data(config, spec, evals, training, name)
    plugins = _distributions(config.get("plugins") or [])
    labels = config.get("labels") or (config.get("head") or {}).get("kwargs", {}).get("labels")
    labels = labels if isinstance(labels, list) else []
    dataset = (evals or {}).get("dataset") or "eval"
    pictures = sorted(p.name for p in d.glob("*.png") if p.is_file() and not p.is_symlink())
    pictures.sort(key=lambda f: f != "training_curves.png")  # the curves first
    card = ModelCard.from_template(
        card_data, template_path=str(TEMPLATE),
        title=text(name), description=text(config.get("description") or ""),
        task=config["task"], modalities_text=" + ".join(modalities),
        composition_text=_composition_text(config),
        pip_install=" ".join([CORE_DISTRIBUTION, *[p for p in plugins
                                                    if p not in (CORE_DISTRIBUTION, "zoo")]]),
        load_id=json.dumps(f"hf-hub:{repo_id}" if repo_id else d.absolute().name),  # no path
        example_input=_example(modalities), example_output=spec.example_output,
        composition=_composition(config), labels=labels,
        labels_text=", ".join(code(x) for x in (labels or [])[:50]),
        plugins_text=", ".join(f"{code(p['distribution'])} {text(p.get('version', ''))}"
                               for p in config.get("plugins") or [] if isinstance(p, dict)
                               and p.get("distribution") in plugins),
        training=_training_rows(training, config),
        weights_text=", ".join(_weights_info(config)[2]) or "none",
        metrics=[(text(names[k]), _fmt(v)) for k, v in metrics.items()],
        eval_note=(f"On {code(dataset)} "
                   f"({text(((evals or {}).get('metrics') or {}).get('n', '?'))} "
                   f"examples), computed by {spec.metrics_library}."),
        images=[{"file": quote(f), "alt": text(f.replace("_", " ").removesuffix(".png"))}
                for f in pictures],
        limitations=spec.limitations, tune=_tune_section(d),
        other_evals=_other_evals(evals, names), calibration=_calibration_text(d),
        robustness=_robustness(d), slices=_slices(d),
        task_section=spec.card_section(config), adapter_text=_adapter_text(config))
    return str(card)


def write_card(directory: str | Path, repo_id: str | None = None) -> Path:
    path = Path(directory) / "README.md"
    path.write_text(render_card(directory, repo_id))
    return path
