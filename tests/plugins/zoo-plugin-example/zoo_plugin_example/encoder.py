import torch

from zoo.base.encoder import Encoder, EncoderOutput


class CharCounts(Encoder):
    modality = "text"
    outputs = ("pooled",)
    dim = 26

    def __init__(self, pretrained=False, weights=None, assets_dir=None):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(26))

    def preprocess(self, values):
        x = torch.zeros(len(values), 26)
        for i, v in enumerate(values):
            for c in v.lower():
                if "a" <= c <= "z":
                    x[i, ord(c) - 97] += 1
        return {"counts": x}

    def forward(self, counts):
        return EncoderOutput(pooled=counts * self.scale)

    def config(self):
        return {}
