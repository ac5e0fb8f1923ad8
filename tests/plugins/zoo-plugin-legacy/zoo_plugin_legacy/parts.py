"""FROZEN (see __init__.py): the components, as a plugin author wrote them for zoo 0.1."""
import zlib
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from zoo.plugin import (DataError, Encoder, Fusion, Head, Task, ZooError, replace_head,
                        sequence_output)


class BagOfWords(Encoder):
    modality = "text"
    outputs = ("pooled", "sequence")

    def __init__(self, dim=24, buckets=512):
        super().__init__()
        self.dim, self.buckets = int(dim), int(buckets)
        self.emb = nn.Embedding(self.buckets + 1, self.dim, padding_idx=0)

    def preprocess(self, values):
        ids = []
        for v in values:
            if not isinstance(v, str):
                raise DataError(f"text input must be a string, got {type(v).__name__}")
            words = v.lower().split() or [""]
            ids.append([1 + zlib.crc32(w.encode()) % self.buckets for w in words])
        width = max(len(x) for x in ids)
        input_ids = torch.zeros(len(ids), width, dtype=torch.long)
        for i, x in enumerate(ids):
            input_ids[i, :len(x)] = torch.tensor(x)
        return {"input_ids": input_ids, "lengths": torch.tensor([len(x) for x in ids])}

    def preprocessor_config(self):
        return {"buckets": self.buckets, "hash": "crc32"}

    def forward(self, input_ids, lengths):
        return sequence_output(self.emb(input_ids), lengths)  # (B, T, D)


def build_encoder(*, pretrained=False, weights=None, assets_dir=None, dim=24, buckets=512):
    return BagOfWords(dim=dim, buckets=buckets)


class ScaleFusion(Fusion):
    def __init__(self, inputs, dim=16):
        super().__init__(inputs)
        self.add_null_embeddings()
        self.gate = nn.ParameterDict({m: nn.Parameter(torch.ones(1)) for m in self.modalities})
        self.proj = nn.Linear(sum(self.in_dims.values()), dim)
        self.out_dim = dim

    def forward(self, encoded, batch_size):
        pooled = self.pooled(encoded, batch_size)
        x = torch.cat([pooled[m] * self.gate[m] for m in self.modalities], dim=-1)
        return torch.tanh(self.proj(x))  # (B, dim)


class TopicHead(Head):
    decode_options = ("top_k",)

    def __init__(self, in_dim, topics=None):
        super().__init__()
        if not topics:
            raise ZooError("legacy-topic-head needs topics=[...]")
        self.labels = [str(t) for t in topics]
        self.proj = nn.Linear(in_dim, len(self.labels))

    def forward(self, fused):
        return self.proj(fused)

    def encode_targets(self, targets, batch=None):
        try:
            return torch.tensor([self.labels.index(str(t["topic"])) for t in targets])
        except (KeyError, ValueError):
            raise DataError(f"a topic must be one of {self.labels}") from None

    def loss(self, outputs, targets):
        return F.cross_entropy(outputs, targets)

    def decode(self, outputs, batch=None, top_k=1):
        probs = outputs.softmax(-1)
        out = []
        for p in probs.tolist():
            order = sorted(range(len(p)), key=lambda i: -p[i])[:max(1, int(top_k))]
            out.append({"topic": self.labels[order[0]], "score": p[order[0]],
                        "top": [[self.labels[i], p[i]] for i in order]})
        return out

    def config(self):
        return {"topics": list(self.labels)}


class Topic(Task):
    outputs = ("topic", "score")
    metric, higher_is_better = "accuracy", True
    metric_names = {"accuracy": "Accuracy"}
    metrics_library = "scikit-learn"
    limitations = "A frozen test plugin."
    example_output = "[{'topic': ..., 'score': ...}]"

    def pipeline_tag(self, modalities):
        return "text-classification"

    def check_targets(self, examples):
        for ex in examples:
            if not isinstance(ex.targets.get("topic"), str):
                raise DataError(f"line {ex.line}: a topic example needs 'topic' (a string)")

    def prepare(self, model, examples, categories=None):
        self.check_targets(examples)
        topics = sorted({ex.targets["topic"] for ex in examples})
        if topics != model.labels:
            replace_head(model, topics=topics)
            return True
        return False

    def metrics(self, model, examples, predictions, categories=None):
        from sklearn.metrics import accuracy_score

        self.check_targets(examples)
        return {"accuracy": float(accuracy_score([ex.targets["topic"] for ex in examples],
                                                 [p["topic"] for p in predictions]))}

    def card_section(self, config):
        return "Outputs: `topic` and its `score`."


class LinesLogger:
    def __init__(self, out_dir, config):
        self.path = Path(out_dir) / "legacy_lines.txt"
        self.n = 0

    def log(self, record):
        self.n += 1

    def close(self):
        self.path.write_text(f"{self.n}\n")
