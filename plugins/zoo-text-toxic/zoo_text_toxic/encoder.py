"""``toxic-bilstm``: the Keras word tokenizer (in plain Python, from its JSON), an
embedding, a bidirectional LSTM and max pooling over time, as the Keras model computes
them: every comment is cut or padded to 100 tokens at the front, and the padding steps
run through the LSTM and the pooling too (the Keras model does not mask them)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from zoo.plugin import DataError, Encoder, EncoderOutput, ZooError

__all__ = ["KerasWordTokenizer", "ToxicBiLSTM", "build_encoder"]

TOKENIZER_FILE = "tokenizer.json"


class KerasWordTokenizer:
    """Keras's ``Tokenizer.texts_to_sequences`` + ``pad_sequences`` (word level): lower
    case, every filter character becomes the split character, split on it, drop empty
    pieces, keep words of the vocabulary (the ``oov_index`` for others when it has one),
    then keep the last ``maxlen`` ids, zero-padded at the front."""

    def __init__(self, spec: dict[str, Any]) -> None:
        if spec.get("kind") != "keras-word-tokenizer":
            raise ZooError(f"not a keras-word-tokenizer JSON (kind {spec.get('kind')!r})")
        self.spec = spec
        self.lower, self.split = bool(spec["lower"]), str(spec["split"])
        self.table = str.maketrans({c: self.split for c in spec["filters"]})
        self.index: dict[str, int] = spec["word_index"]
        self.oov = spec.get("oov_index")
        self.maxlen = int(spec["maxlen"])

    def words(self, text: str) -> list[str]:
        if self.lower:
            text = text.lower()
        return [w for w in text.translate(self.table).split(self.split) if w]

    def ids(self, text: str) -> list[int]:
        out = []
        for w in self.words(text):
            i = self.index.get(w, self.oov)
            if i is not None:
                out.append(i)
        out = out[-self.maxlen:]  # truncating="pre": the end of a long comment is kept
        return [0] * (self.maxlen - len(out)) + out  # padding="pre"


class ToxicBiLSTM(Encoder):
    modality = "text"
    outputs = ("pooled",)

    def __init__(self, tokenizer: KerasWordTokenizer, vocab_size: int = 20000,
                 embedding_dim: int = 50, units: int = 50) -> None:
        super().__init__()
        self.tokenizer = tokenizer
        self.dim = 2 * int(units)
        self.embedding = nn.Embedding(int(vocab_size), int(embedding_dim))
        self.lstm = nn.LSTM(int(embedding_dim), int(units), batch_first=True,
                            bidirectional=True)

    def preprocess(self, values: Sequence[Any]) -> dict[str, torch.Tensor]:
        rows = []
        for v in values:
            if not isinstance(v, str):
                raise DataError(f"text must be a string, got {type(v).__name__}")
            rows.append(self.tokenizer.ids(v))
        return {"input_ids": torch.tensor(rows, dtype=torch.long)}  # (B, 100)

    def forward(self, input_ids: torch.Tensor) -> EncoderOutput:
        seq, _ = self.lstm(self.embedding(input_ids))  # (B, T, 2 * units)
        return EncoderOutput(pooled=seq.amax(dim=1))  # (B, 2 * units): max over time

    def config(self) -> dict[str, Any]:
        return {"vocab_size": self.embedding.num_embeddings,
                "embedding_dim": self.embedding.embedding_dim, "units": self.lstm.hidden_size}

    def preprocessor_config(self) -> dict[str, Any]:
        s = self.tokenizer.spec
        return {"tokenizer": "keras word tokenizer", "lower": s["lower"],
                "filters": s["filters"], "maxlen": s["maxlen"], "padding": s["padding"],
                "truncating": s["truncating"], "words": len(s["word_index"])}

    def save_assets(self, directory: Path) -> None:
        super().save_assets(directory)
        (directory / TOKENIZER_FILE).write_text(json.dumps(self.tokenizer.spec))


def build_encoder(*, pretrained: bool = False, weights: str | None = None,
                  assets_dir: str | None = None, vocab_size: int = 20000,
                  embedding_dim: int = 50, units: int = 50) -> ToxicBiLSTM:
    """A saved model brings its tokenizer (``assets_dir``); otherwise it is the package's,
    converted once into the zoo cache with the weights (loaded when ``pretrained``)."""
    if assets_dir is not None and (Path(assets_dir) / TOKENIZER_FILE).is_file():
        spec = json.loads((Path(assets_dir) / TOKENIZER_FILE).read_text())
        folder = None
    else:
        from zoo_text_toxic.convert import converted

        folder = converted()
        spec = json.loads((folder / TOKENIZER_FILE).read_text())
    enc = ToxicBiLSTM(KerasWordTokenizer(spec), vocab_size, embedding_dim, units)
    if pretrained:
        from safetensors.torch import load_file

        from zoo_text_toxic.convert import converted

        enc.load_state_dict(load_file(str((folder or converted()) / "encoder.safetensors")))
    return enc
