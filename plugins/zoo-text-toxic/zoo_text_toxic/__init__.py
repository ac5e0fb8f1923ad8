"""zoo-text-toxic: a ready toxicity classifier for English comments.

The network and weights of the ``toxic-comment-classifier`` pip package (0.3.0, MIT;
trained on the Jigsaw Toxic Comment Classification data): a Keras tokenizer (the 20 000
most frequent words), a 50-d embedding, a bidirectional LSTM (50 units each way), max
pooling over time, a 50-unit ReLU layer and six sigmoid outputs (toxic, severe_toxic,
obscene, threat, insult, identity_hate). Ported to torch: the weights are read from the
package's ``model.weights.h5`` with h5py and its ``tokenizer.pickle`` with an unpickler
that admits only the tokenizer's plain data (no code runs), both converted once into the
zoo cache; no TensorFlow.

- encoder ``toxic-bilstm`` (text): tokenizer + embedding + BiLSTM + max pool -> 100-d.
- head ``toxicity-classifier``: 100 -> 50 (ReLU) -> labels; multi-label (sigmoid, threshold)
  or single-label, so it fine-tunes on other labels too.
- model ``toxic-bilstm-jigsaw``: ready (``zoo predict toxic-bilstm-jigsaw "you idiot"``).
"""
from zoo.plugin import hookimpl

zoo_contract = 2


@hookimpl
def register_weights(register):
    from zoo_text_toxic.weights import register_all

    register_all(register)


@hookimpl
def register_encoders(register):
    register("toxic-bilstm", "zoo_text_toxic.encoder:build_encoder", modality="text",
             outputs=("pooled",), dim=100, weights="toxic-bilstm.jigsaw",
             description="Keras-compatible word tokenizer (20k words, 100 tokens) + 50-d "
                         "embedding + BiLSTM (2x50) + max pool; Jigsaw toxicity weights from "
                         "pip toxic-comment-classifier (MIT).")


@hookimpl
def register_heads(register):
    register("toxicity-classifier", "zoo_text_toxic.head:ToxicityHead",
             tasks=("classification",), accepts=("pooled",),
             description="Dense 50 (ReLU) + one output per label over a text encoder's pooled "
                         "vector; multi-label (sigmoid, threshold) or single-label.")


@hookimpl
def register_models(register):
    from zoo_text_toxic.weights import HEAD

    register("toxic-bilstm-jigsaw", {
        "task": "classification",
        "description": "Ready toxicity classifier (English comments, 6 labels: toxic, "
                       "severe_toxic, obscene, threat, insult, identity_hate), multi-label; "
                       "toxic-comment-classifier's BiLSTM ported to torch.",
        "encoders": {"text": "toxic-bilstm"},
        "head": {"name": "toxicity-classifier", "pretrained": HEAD}})
