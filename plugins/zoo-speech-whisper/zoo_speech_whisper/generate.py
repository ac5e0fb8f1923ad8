"""Decoding Whisper windows: language detection, batched greedy search, beam search, with or
without timestamp tokens.

At every step the non-speech and control tokens are suppressed, and blank and end-of-text at
the first step (as CTranslate2, what faster-whisper runs, and openai-whisper do). Decoding
stops at end-of-text or after ``max_new_tokens``.

With timestamps (``Settings.timestamp_begin`` set) the logits also follow Whisper's timestamp
grammar, a transcript being ``<|t0|> text <|t1|><|t1|> text <|t2|> ...``:

- ``<|notimestamps|>`` is never chosen, and the first token is a timestamp of at most
  ``max_initial_timestamp`` (1 s), so a window starts where its speech starts;
- timestamps come in pairs: after a pair (or the opening one) text must follow; after text
  and one timestamp, another timestamp or the end must follow (a lone timestamp before the
  end means the speech stopped there);
- timestamps never go back in time, and a segment cannot end where it started (the closing
  timestamp is later than the opening one);
- when the timestamps together are more probable than the most probable text token, a
  timestamp is chosen (the sum over 1501 positions would otherwise lose to one text token
  even when the model is sure a segment ends here, only not exactly when).

Each decoded window also reports the sum of its tokens' log-probabilities (end of text
included) and the probability of ``<|nospeech|>`` right after ``<|startoftranscript|>``, which
the transcription loop uses to drop silent windows.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .modules import KV, WhisperDecoderNet

__all__ = ["Settings", "Decoded", "detect_language", "greedy", "beam_search"]


@dataclass(frozen=True)
class Settings:
    eot: int
    suppress: tuple[int, ...]
    suppress_begin: tuple[int, ...]
    max_new_tokens: int
    no_speech: int = -1  # id of <|nospeech|>; -1: not asked for
    timestamp_begin: int | None = None  # id of <|0.00|>; None: decode without timestamps
    no_timestamps: int = -1  # id of <|notimestamps|>
    max_initial_timestamp: int = 50  # the first timestamp is at most this index (50 = 1 s)


@dataclass
class Decoded:
    tokens: list[int]  # without the prompt and end of text
    sum_logprob: float  # of the chosen tokens and the end of text
    no_speech_prob: float  # P(<|nospeech|>) after <|startoftranscript|>; nan if not asked

    @property
    def avg_logprob(self) -> float:
        return self.sum_logprob / (len(self.tokens) + 1)


def _timestamp_rules(logits: torch.Tensor, seqs: list[list[int]], s: Settings) -> None:
    """Apply the timestamp grammar (module docstring) in place to (N, V) float logits,
    given each row's tokens chosen so far."""
    tb, inf = s.timestamp_begin, float("-inf")
    logits[:, s.no_timestamps] = inf
    for i, seq in enumerate(seqs):
        if not seq:  # the first token: a timestamp within max_initial_timestamp
            logits[i, :tb] = inf
            logits[i, tb + s.max_initial_timestamp + 1:] = inf
            continue
        last = seq[-1] >= tb
        closing = last and len(seq) > 1 and seq[-2] < tb  # text, then one timestamp
        if last and not closing:  # a pair (or the opening one): text next
            logits[i, tb:] = inf
        elif closing:  # a timestamp or the end next
            logits[i, :s.eot] = inf
        latest = next((t for t in reversed(seq) if t >= tb), None)
        if latest is not None:  # later than the last one; equal only to open the next
            logits[i, tb:latest if closing else latest + 1] = inf
    # the softmax's normaliser is common to both sides: compare raw log-sum-exp and max
    ts_mass = logits[:, tb:].logsumexp(-1)  # (N,)
    best_text = logits[:, :tb].max(-1).values
    for i in (ts_mass > best_text).nonzero()[:, 0].tolist():
        logits[i, :tb] = inf


def _masked(logits: torch.Tensor, s: Settings, seqs: list[list[int]]) -> torch.Tensor:
    """(N, V) logits with suppressed ids at -inf; ``seqs``: each row's tokens so far."""
    logits = logits.float().clone()
    logits[:, list(s.suppress)] = float("-inf")
    if not any(seqs) and s.suppress_begin:
        logits[:, list(s.suppress_begin)] = float("-inf")
    if s.timestamp_begin is not None:
        _timestamp_rules(logits, seqs, s)
    return logits


def _prompt_pass(decoder: WhisperDecoderNet, cross: list[KV], prompts: torch.Tensor,
                 s: Settings, sot_index: int) -> tuple[torch.Tensor, list[KV], list[float]]:
    """The prompt through the decoder: last logits (N, V), the cache, P(no speech)."""
    logits, cache = decoder(prompts, cross)  # (N, P, V)
    if s.no_speech >= 0:
        no_speech = logits[:, sot_index].float().softmax(-1)[:, s.no_speech].tolist()
    else:
        no_speech = [float("nan")] * prompts.shape[0]
    return logits[:, -1], cache, no_speech


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
           s: Settings, sot_index: int = 0) -> list[Decoded]:
    """Best token at each step, for N windows at once. ``prompts``: (N, P) token ids, with
    ``<|startoftranscript|>`` at ``sot_index``."""
    n, p = prompts.shape
    steps = min(s.max_new_tokens, decoder.max_positions - p)
    last, cache, no_speech = _prompt_pass(decoder, cross, prompts, s, sot_index)
    done = torch.zeros(n, dtype=torch.bool, device=prompts.device)
    seqs: list[list[int]] = [[] for _ in range(n)]
    total = torch.zeros(n, device=prompts.device)
    for step in range(steps):
        logp = _masked(last, s, seqs).log_softmax(-1)  # (N, V)
        nxt = logp.argmax(-1)  # (N,)
        total += torch.where(done, 0.0, logp.gather(1, nxt[:, None])[:, 0])
        nxt = torch.where(done, torch.full_like(nxt, s.eot), nxt)
        for seq, t in zip(seqs, nxt.tolist()):
            seq.append(t)
        done |= nxt == s.eot
        if bool(done.all()) or step == steps - 1:
            break
        logits, cache = decoder(nxt[:, None], cross, cache)  # (N, 1, V)
        last = logits[:, -1]
    return [Decoded(row[:row.index(s.eot)] if s.eot in row else row, float(lp), ns)
            for row, lp, ns in zip(seqs, total.tolist(), no_speech)]


def _best_continuations(logp: torch.Tensor, seqs: list[list[int]], beams: int, eot: int,
                        finished: list[tuple[float, float, list[int]]]
                        ) -> tuple[list[int], list[int], list[float]]:
    """The ``beams`` best live continuations of (live, V) summed log-probabilities; end of
    text ranked above the last live one finishes a hypothesis (rank, sum, tokens)."""
    top, idx = logp.flatten().topk(min(2 * beams, logp.numel()))
    rows, toks, scores = [], [], []
    for score, flat in zip(top.tolist(), idx.tolist()):
        row, tok = divmod(flat, logp.shape[1])
        if tok == eot:
            if len(finished) < beams:
                finished.append((score / (len(seqs[row]) + 1), score, seqs[row]))
            continue
        rows.append(row)
        toks.append(tok)
        scores.append(score)
        if len(rows) == beams:
            break
    return rows, toks, scores


def beam_search(decoder: WhisperDecoderNet, cross: list[KV], prompt: torch.Tensor,
                s: Settings, beams: int, sot_index: int = 0) -> Decoded:
    """Beam search for one window (``cross`` of batch 1, ``prompt`` (1, P)); finished
    hypotheses are ranked by their summed log-probability over their length (length
    penalty 1, as CTranslate2's default)."""
    p = prompt.shape[1]
    steps = min(s.max_new_tokens, decoder.max_positions - p)
    last, cache, no_speech = _prompt_pass(decoder, cross, prompt, s, sot_index)
    cross_b = [(k.expand(beams, -1, -1, -1), v.expand(beams, -1, -1, -1)) for k, v in cross]
    seqs: list[list[int]] = [[]]
    scores = torch.zeros(1, device=prompt.device)  # (live,)
    finished: list[tuple[float, float, list[int]]] = []
    for step in range(steps):
        logp = _masked(last, s, seqs).log_softmax(-1) + scores[:, None]  # (live, V)
        rows, toks, kept = _best_continuations(logp, seqs, beams, s.eot, finished)
        if len(finished) >= beams or not rows:
            break
        seqs = [seqs[r] + [t] for r, t in zip(rows, toks)]
        scores = torch.tensor(kept, device=prompt.device)
        if step == steps - 1:
            break
        index = torch.tensor(rows, device=prompt.device)
        cache = [(k.index_select(0, index), v.index_select(0, index)) for k, v in cache]
        live = [(k[:len(rows)], v[:len(rows)]) for k, v in cross_b]
        logits, cache = decoder(torch.tensor(toks, device=prompt.device)[:, None], live, cache)
        last = logits[:, -1]
    if not finished:  # ran out of steps: the live hypotheses, by the same ranking
        finished = [(sc / max(len(q), 1), sc, q) for sc, q in zip(scores.tolist(), seqs)]
    _, total, tokens = max(finished, key=lambda x: x[0])
    return Decoded(tokens, total, no_speech[0])
