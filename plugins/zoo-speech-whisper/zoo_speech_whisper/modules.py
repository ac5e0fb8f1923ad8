"""Whisper's encoder and decoder in plain torch, with transformers' parameter names (so a
``WhisperForConditionalGeneration`` state dict loads under ``model.encoder.`` /
``model.decoder.``), and a key/value cache for incremental decoding."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["WhisperEncoderNet", "WhisperDecoderNet", "KV"]

KV = tuple[torch.Tensor, torch.Tensor]  # keys, values: (N, H, T, hd) each


class Attention(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q_proj = nn.Linear(d, d)
        self.k_proj = nn.Linear(d, d, bias=False)  # Whisper's keys have no bias
        self.v_proj = nn.Linear(d, d)
        self.out_proj = nn.Linear(d, d)

    def split(self, x: torch.Tensor) -> torch.Tensor:
        n, t, d = x.shape
        return x.view(n, t, self.heads, d // self.heads).transpose(1, 2)  # (N, H, T, hd)

    def kv(self, x: torch.Tensor) -> KV:
        return self.split(self.k_proj(x)), self.split(self.v_proj(x))

    def forward(self, x: torch.Tensor, kv: KV, causal: bool = False) -> torch.Tensor:
        q = self.split(self.q_proj(x))  # (N, H, L, hd)
        out = F.scaled_dot_product_attention(q, kv[0], kv[1], is_causal=causal)
        n, h, t, hd = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(n, t, h * hd))  # (N, L, D)


class EncoderLayer(nn.Module):
    def __init__(self, d: int, heads: int, ffn: int) -> None:
        super().__init__()
        self.self_attn_layer_norm = nn.LayerNorm(d)
        self.self_attn = Attention(d, heads)
        self.final_layer_norm = nn.LayerNorm(d)
        self.fc1, self.fc2 = nn.Linear(d, ffn), nn.Linear(ffn, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.self_attn_layer_norm(x)
        x = x + self.self_attn(h, self.self_attn.kv(h))
        return x + self.fc2(F.gelu(self.fc1(self.final_layer_norm(x))))


class WhisperEncoderNet(nn.Module):
    """Log-mel (N, n_mels, 2 * positions) -> (N, positions, D): two convolutions (the second
    with stride 2), sinusoidal positions, pre-norm transformer layers."""

    def __init__(self, d_model: int, layers: int, heads: int, ffn_dim: int, n_mels: int = 80,
                 positions: int = 1500) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(n_mels, d_model, 3, padding=1)
        self.conv2 = nn.Conv1d(d_model, d_model, 3, stride=2, padding=1)
        self.embed_positions = nn.Embedding(positions, d_model)
        self.layers = nn.ModuleList(EncoderLayer(d_model, heads, ffn_dim) for _ in range(layers))
        self.layer_norm = nn.LayerNorm(d_model)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.conv2(F.gelu(self.conv1(features))))  # (N, D, positions)
        x = x.transpose(1, 2) + self.embed_positions.weight  # (N, positions, D)
        for layer in self.layers:
            x = layer(x)
        return self.layer_norm(x)


class DecoderLayer(nn.Module):
    def __init__(self, d: int, heads: int, ffn: int) -> None:
        super().__init__()
        self.self_attn_layer_norm = nn.LayerNorm(d)
        self.self_attn = Attention(d, heads)
        self.encoder_attn_layer_norm = nn.LayerNorm(d)
        self.encoder_attn = Attention(d, heads)
        self.final_layer_norm = nn.LayerNorm(d)
        self.fc1, self.fc2 = nn.Linear(d, ffn), nn.Linear(ffn, d)

    def forward(self, x: torch.Tensor, cross: KV, past: KV | None) -> tuple[torch.Tensor, KV]:
        h = self.self_attn_layer_norm(x)
        k, v = self.self_attn.kv(h)  # (N, H, L, hd)
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        # causal over the new positions; with a cache, one new position sees all of it
        x = x + self.self_attn(h, (k, v), causal=past is None and x.shape[1] > 1)
        x = x + self.encoder_attn(self.encoder_attn_layer_norm(x), cross)
        x = x + self.fc2(F.gelu(self.fc1(self.final_layer_norm(x))))
        return x, (k, v)


class WhisperDecoderNet(nn.Module):
    """Tokens (N, L) + the encoder's keys/values -> logits (N, L, V); the output projection
    is the token embedding matrix (tied)."""

    def __init__(self, vocab_size: int, d_model: int, layers: int, heads: int, ffn_dim: int,
                 positions: int = 448) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab_size, d_model)
        self.embed_positions = nn.Embedding(positions, d_model)
        self.layers = nn.ModuleList(DecoderLayer(d_model, heads, ffn_dim) for _ in range(layers))
        self.layer_norm = nn.LayerNorm(d_model)
        # the output projection when it is not the embedding matrix itself: set by
        # :meth:`quantize_output` (int8 copy of the tied weights); None: F.linear on them
        self.output_projection: nn.Module | None = None
        self.rescore = 0  # with an int8 projection: its best this many, again in float32

    @property
    def max_positions(self) -> int:
        return self.embed_positions.num_embeddings

    def cross_kv(self, memory: torch.Tensor) -> list[KV]:
        """Each layer's cross-attention keys and values of the encoder output (N, S, D),
        computed once per window."""
        return [layer.encoder_attn.kv(memory) for layer in self.layers]

    def forward(self, tokens: torch.Tensor, cross: list[KV], past: list[KV] | None = None
                ) -> tuple[torch.Tensor, list[KV]]:
        """``past``: the self-attention cache of the tokens before ``tokens`` (then
        ``tokens`` is one step, (N, 1)); returns logits and the extended cache."""
        start = 0 if past is None else past[0][0].shape[2]
        if past is not None and tokens.shape[1] != 1:
            raise ValueError("with a cache, decode one token at a time")
        x = self.embed_tokens(tokens) + self.embed_positions.weight[start:start + tokens.shape[1]]
        cache = []
        for i, layer in enumerate(self.layers):
            x, kv = layer(x, cross[i], None if past is None else past[i])
            cache.append(kv)
        x = self.layer_norm(x)
        if self.output_projection is None:
            return F.linear(x, self.embed_tokens.weight), cache  # (N, L, V)
        logits = self.output_projection(x)  # (N, L, V), int8
        if self.rescore:  # the best candidates' logits exact: the choice float32 would make
            top = logits.topk(self.rescore, dim=-1).indices  # (N, L, k)
            rows = self.embed_tokens.weight[top]  # (N, L, k, D)
            logits.scatter_(-1, top, (rows @ x.unsqueeze(-1)).squeeze(-1))
        return logits, cache

    def quantize_output(self, rescore: int = 16) -> None:
        """Project to the vocabulary with an int8 copy of the embedding matrix (dynamic
        quantization; the embeddings themselves stay float). At every step of decoding
        this (V, D) product is the largest one, and it reads the whole matrix: in int8 it
        reads a quarter of the bytes. The ``rescore`` best logits of each position are then
        computed again in float32 from the embeddings (k dot products), so that where two
        tokens are nearly tied (tiny.en's "ill" and "old" on a LibriVox clip) the int8
        model chooses as the float32 one does."""
        from zoo.plugin import quantize_linear

        tied = nn.Linear(self.embed_tokens.embedding_dim, self.embed_tokens.num_embeddings,
                         bias=False)
        tied.weight = self.embed_tokens.weight
        wrapper = nn.Sequential(tied)  # quantization swaps children, not the root
        quantize_linear(wrapper)
        self.output_projection, self.rescore = wrapper[0], rescore

