import torch
from torch.nn import functional as F

from zoo.plugin import DataError, Encoder, EncoderOutput, Head, Task


class WordLengths(Encoder):
    modality = "text"
    outputs = ("pooled",)

    def __init__(self, pretrained=False, weights=None, assets_dir=None):
        super().__init__()
        self.dim = 8
        self.scale = torch.nn.Parameter(torch.ones(8))

    def preprocess(self, values):
        x = torch.zeros(len(values), 8)
        for i, v in enumerate(values):
            if not isinstance(v, str):
                raise DataError(f"text input must be a string, got {type(v).__name__}")
            for w in v.split():
                x[i, min(len(w), 8) - 1] += 1
        return {"counts": x}

    def forward(self, counts):
        return EncoderOutput(pooled=counts * self.scale)  # (B, 8)


class SumMLP(torch.nn.Module):
    """A plain fusion without config(): its constructor arguments are captured."""

    def __init__(self, inputs, dim=16):
        super().__init__()
        self.mlp = torch.nn.ModuleDict({m: torch.nn.Sequential(
            torch.nn.Linear(s["dim"], dim), torch.nn.GELU()) for m, s in inputs.items()})
        self.out_dim = dim

    def forward(self, encoded, batch_size):
        out = torch.zeros(batch_size, self.out_dim)
        for m, (enc, index) in encoded.items():
            out = out.index_add(0, index, self.mlp[m](enc.pooled))
        return out


class RegressionHead(Head):
    def __init__(self, in_dim):
        super().__init__()
        self.proj = torch.nn.Linear(in_dim, 1)

    def forward(self, fused):
        return self.proj(fused)  # (B, 1)

    def encode_targets(self, targets, batch=None):
        try:
            return torch.tensor([[float(t["target"])] for t in targets])
        except (KeyError, TypeError, ValueError):
            raise DataError("a regression example needs a numeric 'target'") from None

    def loss(self, outputs, targets):
        return F.mse_loss(outputs, targets)

    def decode(self, outputs, batch=None):
        return [{"value": float(v)} for v in outputs[:, 0]]


class Regression(Task):
    outputs = ("value",)
    metric, higher_is_better = "mae", False
    metric_names = {"mae": "MAE", "r2": "R²"}
    metrics_library = "scikit-learn"
    limitations = "Predicts one number from word lengths; a test of the plugin contract."
    example_output = "[{'value': 3.2}]"

    def metrics(self, model, examples, predictions, categories=None):
        from sklearn.metrics import mean_absolute_error, r2_score

        self.check_targets(examples)
        y = [float(ex.targets["target"]) for ex in examples]
        p = [r["value"] for r in predictions]
        return {"mae": float(mean_absolute_error(y, p)), "r2": float(r2_score(y, p))}

    def card_section(self, config):
        return "Outputs: `value`, the predicted number."
