"""Decoding Whisper windows: language detection, batched greedy search, beam search.

Like CTranslate2 (what faster-whisper runs) without timestamps: the non-speech and control
tokens are suppressed at every step, blank and end-of-text at the first step; decoding stops
at end-of-text or after ``max_new_tokens`` (at most half the decoder's 448 positions).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .modules import KV, WhisperDecoderNet

__all__ = ["Settings", "detect_language", "greedy", "beam_search"]


@dataclass(frozen=True)
class Settings:
    eot: int
    suppress: tuple[int, ...]
    suppress_begin: tuple[int, ...]
    max_new_tokens: int


def _masked(logits: torch.Tensor, s: Settings, first: bool) -> torch.Tensor:
    """(N, V) logits with suppressed ids at -inf."""
    logits = logits.float().clone()
    logits[:, list(s.suppress)] = float("-inf")
    if first and s.suppress_begin:
        logits[:, list(s.suppress_begin)] = float("-inf")
    return logits


def detect_language(decoder: WhisperDecoderNet, cross: list[KV], sot: int,
                    language_ids: list[int]) -> list[int]:
    """The most likely language token for each window, after ``<|startoftranscript|>``."""
    n = cross[0][0].shape[0]
    tokens = torch.full((n, 1), sot, dtype=torch.long, device=cross[0][0].device)
    logits, _ = decoder(tokens, cross)  # (N, 1, V)
    ids = torch.tensor(language_ids, device=logits.device)
    best = logits[:, 0, ids].argmax(-1)  # (N,)
    return [language_ids[i] for i in best.tolist()]


def greedy(decoder: WhisperDecoderNet, cross: list[KV], prompts: torch.Tensor,
           s: Settings) -> list[list[int]]:
    """Best token at each step, for N windows at once. ``prompts``: (N, P) token ids."""
    n, p = prompts.shape
    steps = min(s.max_new_tokens, decoder.max_positions - p)
    logits, cache = decoder(prompts, cross)  # (N, P, V)
    done = torch.zeros(n, dtype=torch.bool, device=prompts.device)
    out: list[torch.Tensor] = []
    last = logits[:, -1]
    for step in range(steps):
        nxt = _masked(last, s, first=step == 0).argmax(-1)  # (N,)
        nxt = torch.where(done, torch.full_like(nxt, s.eot), nxt)
        out.append(nxt)
        done |= nxt == s.eot
        if bool(done.all()) or step == steps - 1:
            break
        logits, cache = decoder(nxt[:, None], cross, cache)  # (N, 1, V)
        last = logits[:, -1]
    rows = torch.stack(out, dim=1).tolist() if out else [[] for _ in range(n)]  # (N, steps)
    return [row[:row.index(s.eot)] if s.eot in row else row for row in rows]


def beam_search(decoder: WhisperDecoderNet, cross: list[KV], prompt: torch.Tensor,
                s: Settings, beams: int) -> list[int]:
    """Beam search for one window (``cross`` of batch 1, ``prompt`` (1, P)); finished
    hypotheses are ranked by their summed log-probability over their length (length
    penalty 1, as CTranslate2's default)."""
    p = prompt.shape[1]
    steps = min(s.max_new_tokens, decoder.max_positions - p)
    logits, cache = decoder(prompt, cross)
    cross_b = [(k.expand(beams, -1, -1, -1), v.expand(beams, -1, -1, -1)) for k, v in cross]
    seqs: list[list[int]] = [[]]
    scores = torch.zeros(1, device=prompt.device)  # (live,)
    finished: list[tuple[float, list[int]]] = []
    last = logits[:, -1]  # (live, V)
    for step in range(steps):
        logp = _masked(last, s, first=step == 0).log_softmax(-1) + scores[:, None]  # (live, V)
        top, idx = logp.flatten().topk(min(2 * beams, logp.numel()))
        keep_rows, keep_tok, keep_score = [], [], []
        for score, flat in zip(top.tolist(), idx.tolist()):
            row, tok = divmod(flat, logp.shape[1])
            if tok == s.eot:  # ranked above the last live beam: a finished hypothesis
                if len(finished) < beams:
                    finished.append((score / max(len(seqs[row]) + 1, 1), seqs[row]))
                continue
            keep_rows.append(row)
            keep_tok.append(tok)
            keep_score.append(score)
            if len(keep_rows) == beams:
                break
        if len(finished) >= beams or not keep_rows:
            break
        seqs = [seqs[r] + [t] for r, t in zip(keep_rows, keep_tok)]
        scores = torch.tensor(keep_score, device=prompt.device)
        if step == steps - 1:
            break
        rows = torch.tensor(keep_rows, device=prompt.device)
        cache = [(k.index_select(0, rows), v.index_select(0, rows)) for k, v in cache]
        live = len(keep_rows)
        cross_live = [(k[:live], v[:live]) for k, v in cross_b]
        logits, cache = decoder(torch.tensor(keep_tok, device=prompt.device)[:, None],
                                cross_live, cache)
        last = logits[:, -1]
    if not finished:  # ran out of steps: the live hypotheses, by the same ranking
        finished = [(sc / max(len(q), 1), q) for sc, q in zip(scores.tolist(), seqs)]
    return max(finished, key=lambda x: x[0])[1]
