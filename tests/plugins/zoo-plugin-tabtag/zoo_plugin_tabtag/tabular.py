"""The tabular modality and its encoder."""
import json
import math
import zlib

import torch
from torch import nn

from zoo.plugin import DataError, Encoder, EncoderOutput, Modality, RequestError

_SCALARS = (int, float, str, type(None))


def _row(value, where):
    if not isinstance(value, dict) or not value:
        raise DataError(f"{where}: 'readings' must be an object of column -> value, got "
                        f"{type(value).__name__}")
    for k, v in value.items():
        if not isinstance(k, str) or not isinstance(v, _SCALARS) or isinstance(v, bool):
            raise DataError(f"{where}: column {str(k)[:40]!r} must hold a number, a string "
                            f"or null")
    return value


class Tabular(Modality):
    typed_cells = True  # CSV cells become numbers when a column holds numbers
    exportable = True
    limits = {"max_table_columns": 256}
    card_example = '"readings": {"age": 41, "city": "Oslo"}'

    def columns(self, column=None):
        if isinstance(column, str) and "," in column:  # --column readings=age,income,city
            return [c.strip() for c in column.split(",") if c.strip()]
        return super().columns(column)

    def from_row(self, row, column=None):
        cols = self.columns(column)
        if cols == [self.name]:  # a JSON object under "readings"
            return row.get(self.name)
        value = {c: row.get(c) for c in cols}
        return value if any(v not in (None, "") for v in value.values()) else None

    def from_data(self, value, root, where):
        return _row(value, where)

    def check(self, value):
        return None if isinstance(value, dict) and value else "empty table row"

    def length(self, value):
        return float(len(value)) if isinstance(value, dict) else 0.0

    def digest(self, value):
        return json.dumps(value, sort_keys=True).encode()

    def describe(self, values):
        cols = sorted({c for v in values for c in v})
        return {"rows": len(values), "columns": cols[:50]}

    def from_request(self, value, where, limits):
        if not isinstance(value, dict):
            raise RequestError(f"{where} must be an object of column -> value")
        if len(value) > limits.max_table_columns:
            raise RequestError(f"{where} has {len(value)} columns; the limit is "
                               f"{limits.max_table_columns:g} (ZOO_SERVE_MAX_TABLE_COLUMNS)", 413)
        try:
            return _row(value, where)
        except DataError as e:
            raise RequestError(str(e)) from None

    def request_schema(self):
        return {"type": "object", "additionalProperties": {"type": ["number", "string",
                                                                     "null"]}}

    def samples(self):
        return [{"age": 41, "income": 52.5, "city": "Oslo"},
                {"age": 23, "income": 8.0, "city": "Lima"}]


class TabMLP(Encoder):
    modality = "readings"
    outputs = ("pooled",)

    def __init__(self, numeric=("x",), categorical=(), dim=32, buckets=64):
        super().__init__()
        self.numeric, self.categorical = list(numeric), list(categorical)
        self.dim, self.buckets = int(dim), int(buckets)
        self.cat = nn.Embedding(self.buckets * max(1, len(self.categorical)) + 1, 8,
                                padding_idx=0)
        width = 2 * len(self.numeric) + 8
        self.mlp = nn.Sequential(nn.Linear(width, self.dim), nn.GELU(),
                                 nn.Linear(self.dim, self.dim))
        # standardisation fitted to the training split (Encoder.fit), saved with the weights
        self.register_buffer("center", torch.zeros(len(self.numeric)))
        self.register_buffer("spread", torch.ones(len(self.numeric)))
        self.register_buffer("fitted", torch.tensor(False))

    def fit(self, values):
        if bool(self.fitted):  # fine-tuning a saved model keeps its scaling
            return
        numeric = self.preprocess(values)["numeric"]
        x, mask = numeric[:, :len(self.numeric)], numeric[:, len(self.numeric):]
        n = mask.sum(0).clamp(min=1)
        center = (x * mask).sum(0) / n
        spread = (((x - center) * mask) ** 2).sum(0).div(n).sqrt()
        self.center.copy_(center)
        self.spread.copy_(torch.where(spread > 1e-6, spread, torch.ones_like(spread)))
        self.fitted.fill_(True)

    def preprocess(self, values):
        nums, cats = [], []
        for v in values:
            row = _row(v, "tabular input")
            x, present = [], []
            for c in self.numeric:
                raw = row.get(c)
                try:
                    f = float(raw) if raw not in (None, "") else math.nan
                except (TypeError, ValueError):
                    raise DataError(f"tabular column {c!r} must be a number, got {raw!r}") from None
                ok = not math.isnan(f)
                x.append(math.copysign(math.log1p(abs(f)), f) if ok else 0.0)
                present.append(1.0 if ok else 0.0)
            nums.append(x + present)
            cats.append([1 + j * self.buckets + zlib.crc32(str(row.get(c)).encode()) % self.buckets
                         if row.get(c) not in (None, "") else 0
                         for j, c in enumerate(self.categorical)] or [0])
        return {"numeric": torch.tensor(nums, dtype=torch.float32),  # (B, 2N)
                "categories": torch.tensor(cats, dtype=torch.long)}  # (B, K)

    def preprocessor_config(self):
        return {"numeric": self.numeric, "categorical": self.categorical,
                "buckets": self.buckets, "scale": "sign * log1p"}

    def forward(self, numeric, categories):
        n = len(self.numeric)
        numeric = torch.cat([(numeric[:, :n] - self.center) / self.spread * numeric[:, n:],
                             numeric[:, n:]], dim=-1)
        cat = self.cat(categories).sum(1)  # (B, 8)
        return EncoderOutput(pooled=self.mlp(torch.cat([numeric, cat], dim=-1)))  # (B, dim)


def build_encoder(*, pretrained=False, weights=None, assets_dir=None, numeric=("x",),
                  categorical=(), dim=32, buckets=64):
    return TabMLP(numeric=numeric, categorical=categorical, dim=dim, buckets=buckets)
