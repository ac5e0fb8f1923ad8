"""The public API for plugin authors: everything a zoo plugin imports comes from here.

Registration modules import only ``hookimpl`` (cheap: no torch) and declare the plugin
contract they were written for; factory modules import the base classes, which bring torch
with them, when a model is built::

    from zoo.plugin import hookimpl                      # my_plugin/__init__.py
    zoo_contract = 2
    from zoo.plugin import Encoder, EncoderOutput        # my_plugin/encoder.py

- ``hookimpl``: the marker for hook implementations (see docs/plugins.md for the hooks);
  ``CONTRACT``: the plugin contract this zoo implements (declare ``zoo_contract``).
- ``Modality``: the modality contract (reading, limits, checks, serving of one input kind).
- ``Encoder``, ``EncoderOutput``, ``sequence_output``, ``WORD_IDS``: encoders and their
  output contract (``WORD_IDS``: the preprocessing key for each token's word);
  ``scale_choices_of(encoder)``: an encoder's ``scale_choices()``, checked.
- ``Fusion``, ``Encoded``: fusion base class (optional) and what fusions receive.
- ``Head``: the head contract (``encode_targets``, ``loss``, ``decode``), and the Protocols
  of head abilities the core uses: ``Labelled``, ``Prompted``, ``OpenVocabulary``.
- ``Task``, ``Probe``: the task contract (targets checked one example at a time, metrics,
  head fitting, corrections, pseudo-labels, data formats, card and serving facts) and what
  a task's closed-form probe start receives.
- ``Objective``: the self-supervised pretraining contract (``register_objectives``).
- ``Batch``, ``ModalityBatch``: the typed batch heads without a fusion receive.
- ``Example``: one example of a data set (``inputs``, ``targets``, ``line``).
- ``weights_path(tag)``, ``load_weights(module, tag)``, ``has_weights(tag)``,
  ``weights_info(tag)``: pretrained weights, resolved, sha256-checked and key-mapped by the
  core; ``weights_info`` gives the registered record (sources, sha256, licence).
- ``seal(path, claim)``, ``is_sealed(path, claim)``: a file a plugin converts into the zoo
  cache is sealed when written and trusted only while its seal holds (an HMAC under the
  user's secret): an edited or planted cache entry is rebuilt.
- ``replace_head(model, **kwargs)``: rebuild a model's head (a task fitting new labels);
  ``derive_model(model, modalities, task=..., head=...)``: a model of another task on some
  of a model's encoders, their weights kept.
- ``quantize_linear(module)``: every ``nn.Linear`` under a module made dynamic int8, as
  ``zoo.load(..., quantize="int8")`` does it; for a component's own ``quantize(mode)``,
  which the core calls instead of quantizing the component's linear layers itself.
- ``offline()``: whether the network is off (``HF_HUB_OFFLINE=1``, or a saved model being
  rebuilt from its config).
- ``read_image(value)``, ``read_audio(value, rate=None)``, ``word_spans(text)``: how zoo's
  own modalities read an image, audio, and the words of a text; ``detect_language(texts)``:
  the ISO 639-1 code most of the texts are in (fastText's lid.176), or None.
- ``ZooError``, ``DataError``, ``RequestError``: errors shown to the user as one line
- ``DataWarning``: warned by ``Task.prepare`` about data nothing useful is learnt from;
  ``zoo train`` stops on it unless ``--force``
  (``RequestError`` carries the HTTP status of a serving request it refuses).
"""
from __future__ import annotations

from typing import Any

from zoo.errors import DataError, DataWarning, RequestError, ZooError
from zoo.hookspecs import CONTRACT, hookimpl

__all__ = ["hookimpl", "CONTRACT", "Modality", "Encoder", "EncoderOutput", "sequence_output",
           "WORD_IDS", "Fusion", "Encoded", "Head", "Labelled", "Prompted", "OpenVocabulary",
           "Task", "Probe", "Objective", "Batch", "ModalityBatch", "Example", "weights_path",
           "load_weights", "has_weights", "weights_info", "replace_head", "derive_model",
           "read_image", "read_audio", "word_spans", "offline", "ZooError", "DataError",
           "DataWarning", "RequestError", "seal", "is_sealed", "markdown_code",
           "markdown_text", "fit_logistic", "quantize_linear", "detect_language",
           "scale_choices_of"]

# name -> (module, attribute): imported on first access, so `from zoo.plugin import
# hookimpl` in a registration module never imports torch
_LAZY = {
    "Modality": ("zoo.base.modality", "Modality"),
    "markdown_code": ("zoo.io.markdown", "inline_code"),
    "fit_logistic": ("zoo.tasks.probe", "fit_logistic"),
    "markdown_text": ("zoo.io.markdown", "plain_text"),
    "Encoder": ("zoo.base.encoder", "Encoder"),
    "EncoderOutput": ("zoo.base.encoder", "EncoderOutput"),
    "sequence_output": ("zoo.base.encoder", "sequence_output"),
    "WORD_IDS": ("zoo.base.encoder", "WORD_IDS"),
    "scale_choices_of": ("zoo.base.encoder", "scale_choices_of"),
    "Fusion": ("zoo.base.fusion", "Fusion"),
    "Encoded": ("zoo.base.fusion", "Encoded"),
    "Head": ("zoo.base.head", "Head"),
    "Labelled": ("zoo.base.head", "Labelled"),
    "Prompted": ("zoo.base.head", "Prompted"),
    "OpenVocabulary": ("zoo.base.head", "OpenVocabulary"),
    "Task": ("zoo.base.task", "Task"),
    "Probe": ("zoo.base.task", "Probe"),
    "Objective": ("zoo.base.objective", "Objective"),
    "Batch": ("zoo.base.batch", "Batch"),
    "ModalityBatch": ("zoo.base.batch", "ModalityBatch"),
    "Example": ("zoo.base.example", "Example"),
    "replace_head": ("zoo.build.compose", "replace_head"),
    "derive_model": ("zoo.build.compose", "derive_model"),
    "read_image": ("zoo.modalities.image", "read_image"),
    "read_audio": ("zoo.modalities.audio", "read_audio"),
    "word_spans": ("zoo.modalities.text", "word_spans"),
    "has_weights": ("zoo.weights", "has_weights"),
    "weights_info": ("zoo.weights", "weights_info"),
    "weights_path": ("zoo.weights", "weights_path"),
    "load_weights": ("zoo.weights", "load_weights"),
    "quantize_linear": ("zoo.quantization", "quantize_linear"),
    "detect_language": ("zoo.data.language", "detect_language"),
    "seal": ("zoo.weights", "seal"),
    "is_sealed": ("zoo.weights", "is_sealed"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'zoo.plugin' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)


def offline() -> bool:
    """True when nothing may touch the network: ``HF_HUB_OFFLINE`` is set, or a saved model
    is being rebuilt from its config (pass ``local_files_only=True`` to Hugging Face
    libraries then)."""
    from zoo.weights import offline as _offline

    return _offline()
