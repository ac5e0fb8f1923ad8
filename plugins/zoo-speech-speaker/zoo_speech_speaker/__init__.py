"""zoo plugin: speaker verification. Registration only: torch and the audio libraries are
imported when a model is built or scored.

- encoder ``ge2e-speaker``: resemblyzer's GE2E speaker encoder (3-layer LSTM on 40 mel
  bands, 1.6 s partial utterances, 256-d embedding), ported to torch; weights
  ``ge2e-speaker.resemblyzer``: the ``pretrained.pt`` inside the resemblyzer 0.1.4 wheel
  (Apache-2.0; `pip install --no-deps resemblyzer`).
- task ``speaker-verification``: target ``speaker`` (an id per utterance); training enrolls
  the training speakers; EER and minDCF over every pair of eval utterances.
- head ``speaker-verifier``: embeddings, enrolled speakers, AAM-softmax training,
  thresholds chosen on eval.
- models ``resemblyzer-ge2e`` (ready: embeddings and pair scores out of the box) and
  ``resemblyzer-ge2e-adapted`` (the same with a trainable residual adapter).

``verify(model, a, b)`` compares two utterances: ``{"score", "same"}``.
"""
from __future__ import annotations

from typing import Any

from zoo.plugin import hookimpl

zoo_contract = 2  # the plugin contract this module is written for

TASK = "speaker-verification"
ENCODER_WEIGHTS = "ge2e-speaker.resemblyzer"
HEAD_WEIGHTS = "speaker-verifier.ge2e"
SHA256 = {ENCODER_WEIGHTS: "39373b86598fa3da9fcddee6142382efe09777e8d37dc9c0561f41f0070f134e",
          HEAD_WEIGHTS: "ef8c6b9d42f117ef166f8475aa4c1f5d31fe38be94d9fdb7f863310d6181c256"}


def verify(model: Any, first: Any, second: Any, threshold: float | None = None) -> dict:
    """Whether two audio values are the same speaker: ``{"score": cosine, "same": bool}``
    (at the model's ``pair_threshold`` unless ``threshold`` is given)."""
    from .pairs import verify_pair

    return verify_pair(model, first, second, threshold)


@hookimpl
def register_weights(register):
    register(ENCODER_WEIGHTS, sources=["pip:resemblyzer:resemblyzer/pretrained.pt"],
             sha256=SHA256[ENCODER_WEIGHTS], license="apache-2.0",
             description="GE2E speaker encoder trained by Resemble AI (LibriSpeech, "
                         "VoxCeleb 1 and 2), from the resemblyzer 0.1.4 wheel; install with "
                         "`pip install --no-deps resemblyzer`")
    register(HEAD_WEIGHTS,
             sources=["pip:zoo-speech-speaker:zoo_speech_speaker/weights/verifier-ge2e"
                      ".safetensors"],
             sha256=SHA256[HEAD_WEIGHTS], license="apache-2.0",
             description="speaker-verifier for ge2e-speaker, no enrolled speakers; both "
                         "thresholds 0.7229: the EER threshold of ge2e-speaker on the pairs "
                         "of real recordings in bench/bench_speaker.py (pocketsphinx-testdata: "
                         "2 speakers, 45 pairs; `--write-head` rewrites it)")


@hookimpl
def register_encoders(register):
    register("ge2e-speaker", "zoo_speech_speaker.encoder:build", modality="audio",
             outputs=("pooled",), dim=256, weights=ENCODER_WEIGHTS,
             defaults={"n_mels": 40, "hidden": 256, "layers": 3, "dim": 256},
             description="resemblyzer's GE2E speaker encoder: 16 kHz audio, volume to "
                         "-30 dBFS, pauses cut (WebRTC VAD), 1.6 s partials of 40 mel bands "
                         "through a 3-layer LSTM; 256-d L2-normalised speaker embedding.")


@hookimpl
def register_tasks(register):
    register(TASK, "zoo_speech_speaker.task:SpeakerVerification", targets=("speaker",),
             description="Who is speaking: embeddings, enrolled speakers and accept / "
                         "reject decisions; EER and minDCF over every pair of eval "
                         "utterances.")


@hookimpl
def register_heads(register):
    register("speaker-verifier", "zoo_speech_speaker.head:SpeakerVerifier", tasks=(TASK,),
             accepts=("pooled",), defaults={"modality": "audio"},
             description="Speaker embeddings, enrolled speakers (AAM-softmax trained) and "
                         "accept / reject at thresholds chosen on eval data.")


@hookimpl
def register_models(register):
    register("resemblyzer-ge2e", {
        "task": TASK,
        "description": "Ready speaker embeddings and pair scores: resemblyzer's GE2E encoder "
                       "(pretrained, Apache-2.0) and a verification head; `zoo train` "
                       "enrolls speakers.",
        "encoders": {"audio": "ge2e-speaker"},
        "head": {"name": "speaker-verifier", "pretrained": HEAD_WEIGHTS}})
    register("resemblyzer-ge2e-adapted", {
        "task": TASK,
        "description": "resemblyzer's GE2E encoder (pretrained, frozen) with a residual "
                       "adapter trained by the AAM softmax over the enrolled speakers.",
        "encoders": {"audio": "ge2e-speaker"},
        # the adapter has no weights until trained (it starts as the identity map)
        "head": {"name": "speaker-verifier", "adapt": True}})
