"""Long-form transcription: Whisper's seek loop over each recording (as openai-whisper's
``transcribe`` and faster-whisper's ``generate_segments`` run it), for a batch of
recordings at once.

Each recording keeps a seek pointer into its log-mel (10 ms frames). A step takes the
30 s window that starts at the pointer, encodes it (the encoder's own windows at 0, 30,
60 s ... are reused when the pointer lands on one), decodes it, and moves the pointer:

- with timestamps, the decoded tokens are cut into segments at each pair of timestamps
  (``<|t1|><|t1|>``); the pointer moves to the end of the last *complete* segment, so
  speech the window cut off in mid-word is decoded again, whole, from the next window.
  When the window ends with one timestamp (the speech stopped), it moves past the window;
- without timestamps (or when the recording's log-mel is not at hand: features cached
  by the trainer) windows are consecutive 30 s slices, each one segment;
- a window whose ``<|nospeech|>`` probability is above ``no_speech_threshold`` is skipped
  as silence, unless its average log-probability is above ``logprob_threshold`` (the
  model was sure of the text it read there anyway), as openai-whisper decides.

With ``condition_on_previous_text`` each window's prompt carries the text decoded so far
(``<|startofprev|>`` and at most the last 223 tokens), as openai-whisper's default does.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from .encoder import MEL_FRAMES, WINDOW_FRAMES
from .generate import Decoded, Settings, beam_search, detect_language, greedy
from .modules import WhisperDecoderNet
from .tokenizer import WhisperTokenizer

__all__ = ["Options", "Recording", "transcribe"]

FRAME_SECONDS = 0.01  # one log-mel frame
STEP_SECONDS = 0.02  # one timestamp step = one encoder position = two log-mel frames
FRAMES_PER_STEP = MEL_FRAMES // WINDOW_FRAMES  # 2


@dataclass(frozen=True)
class Options:
    task: str = "transcribe"
    num_beams: int = 1
    timestamps: bool = True
    condition_on_previous_text: bool = False
    no_speech_threshold: float | None = 0.6
    logprob_threshold: float | None = -1.0


@dataclass
class Recording:
    """One input's state in the loop."""

    memory: torch.Tensor  # (W, 1500, D): the encoder's windows at 0, 30, 60 s, ...
    frames: int  # log-mel frames that hold audio
    mel: torch.Tensor | None = None  # (n_mels, W * 3000): the whole log-mel; None: no seek
    language: int | None = None
    seek: int = 0
    tokens: list[int] = field(default_factory=list)  # kept segments' tokens (the prompt)
    segments: list[dict[str, Any]] = field(default_factory=list)
    pieces: list[str] = field(default_factory=list)  # the kept segments' raw text

    def window(self) -> tuple[int, torch.Tensor | None]:
        """(frames of audio in the window at the pointer, its log-mel (n_mels, 3000) when
        it must be encoded; None when it is one of the encoder's own windows)."""
        size = min(MEL_FRAMES, self.frames - self.seek)
        if self.seek % MEL_FRAMES == 0 or self.mel is None:
            return size, None
        piece = self.mel[:, self.seek:self.seek + size]
        return size, torch.nn.functional.pad(piece, (0, MEL_FRAMES - size))


def _split(tokens: list[int], tb: int, size: int) -> tuple[list[tuple[int, int, list[int]]],
                                                         int | None]:
    """Segments of one window's tokens, as (start, end) in timestamp steps from the window's
    start and their tokens, and how far the pointer moves (in log-mel frames; None: past the
    window). Text after the last complete segment is left for the next window."""
    is_ts = [t >= tb for t in tokens]
    stopped = len(tokens) >= 2 and not is_ts[-2] and is_ts[-1]  # one timestamp, then the end
    cuts = [i for i in range(1, len(tokens)) if is_ts[i] and is_ts[i - 1]]
    if not cuts:  # one segment: the whole window, or up to its last timestamp
        stamps = [t - tb for t, ts in zip(tokens, is_ts) if ts]
        end = stamps[-1] if stamps and stamps[-1] > 0 else -(-size // FRAMES_PER_STEP)
        return [(0, end, tokens)], None
    if stopped:
        cuts.append(len(tokens))
    segments, start = [], 0
    for cut in cuts:
        piece = tokens[start:cut]
        segments.append((piece[0] - tb, piece[-1] - tb, piece))
        start = cut
    return segments, None if stopped else (tokens[start - 1] - tb) * FRAMES_PER_STEP


def _decode(decoder: WhisperDecoderNet, cross: list, prompts: list[list[int]],
            sot_index: list[int], s: Settings, beams: int) -> list[Decoded]:
    """Each window's prompt decoded; windows whose prompts have one shape share a batch."""
    groups: dict[tuple[int, int], list[int]] = {}
    for i, p in enumerate(prompts):
        groups.setdefault((len(p), sot_index[i]), []).append(i)
    out: list[Decoded | None] = [None] * len(prompts)
    for (_, si), rows in groups.items():
        index = torch.tensor(rows, device=cross[0][0].device)
        sub = cross if len(rows) == len(prompts) else [(k[index], v[index]) for k, v in cross]
        tokens = torch.tensor([prompts[i] for i in rows], device=index.device)  # (n, P)
        if beams == 1:
            found = greedy(decoder, sub, tokens, s, si)
        else:
            found = [beam_search(decoder, [(k[j:j + 1], v[j:j + 1]) for k, v in sub],
                                 tokens[j:j + 1], s, beams, si) for j in range(len(rows))]
        for i, d in zip(rows, found):
            out[i] = d
    return out  # type: ignore[return-value]


def _encode(recs: list[Recording], encode: Callable | None) -> tuple[torch.Tensor, list[int]]:
    """The window at each recording's pointer, encoded: (n, 1500, D), and its audio frames."""
    sizes, memory, todo = [], [], []
    for i, r in enumerate(recs):
        size, mel = r.window()
        sizes.append(size)
        memory.append(r.memory[min(r.seek // MEL_FRAMES, r.memory.shape[0] - 1)])
        if mel is not None:
            todo.append((i, mel))
    if todo and encode is not None:
        feats = torch.stack([m for _, m in todo]).to(recs[0].memory)  # (k, n_mels, 3000)
        for (i, _), enc in zip(todo, encode(feats)):
            memory[i] = enc
    return torch.stack(memory), sizes


def _prompt(tok: WhisperTokenizer, r: Recording, opts: Options, limit: int
            ) -> tuple[list[int], int]:
    previous = r.tokens[-(limit - 1):] if opts.condition_on_previous_text else []
    head = 1 + len(previous) if previous else 0
    return tok.prompt(r.language, opts.task, opts.timestamps, previous), head


def _silent(d: Decoded, opts: Options) -> bool:
    if opts.no_speech_threshold is None or not d.no_speech_prob > opts.no_speech_threshold:
        return False
    return not (opts.logprob_threshold is not None and d.avg_logprob > opts.logprob_threshold)


def _advance(r: Recording, d: Decoded, size: int, tok: WhisperTokenizer, opts: Options,
             duration: float) -> None:
    """Keep one decoded window's segments and move the recording's pointer."""
    if _silent(d, opts):
        r.seek += size
        return
    tb = tok.timestamp_begin
    segments, moved = _split(d.tokens, tb, size) if opts.timestamps else (
        [(0, -(-size // FRAMES_PER_STEP), d.tokens)], None)
    if r.mel is None and moved is not None:  # cannot seek into the window: keep it all
        tail = d.tokens[sum(len(p) for *_, p in segments):]  # starts with its timestamp
        segments.append((tail[0] - tb, -(-size // FRAMES_PER_STEP), tail))
        moved = None
    offset = r.seek * FRAME_SECONDS
    for start, end, piece in segments:
        text = tok.decode(piece, strip=False)
        if start >= end or not text.strip():
            continue
        r.segments.append({"start": round(min(offset + start * STEP_SECONDS, duration), 3),
                           "end": round(min(offset + end * STEP_SECONDS, duration), 3),
                           "text": text.strip()})
        r.pieces.append(text)
        r.tokens += piece
    r.seek += size if moved is None or moved <= 0 else moved


def transcribe(decoder: WhisperDecoderNet, tok: WhisperTokenizer, recs: list[Recording],
               durations: list[float], s: Settings, opts: Options,
               encode: Callable[[torch.Tensor], torch.Tensor] | None = None
               ) -> list[dict[str, Any]]:
    """Run the seek loop of every recording to its end; one result per recording:
    ``text`` and, with timestamps, ``segments`` (``start``/``end`` in seconds)."""
    limit = decoder.max_positions // 2
    while active := [i for i, r in enumerate(recs) if r.seek < r.frames]:
        group = [recs[i] for i in active]
        memory, sizes = _encode(group, encode)
        cross = decoder.cross_kv(memory)  # per layer: (n, H, 1500, hd) twice
        unknown = [j for j, r in enumerate(group) if r.language is None]
        if tok.multilingual and unknown:  # detected once, on the first window
            index = torch.tensor(unknown, device=memory.device)
            found = detect_language(decoder, [(k[index], v[index]) for k, v in cross],
                                    tok.special.sot, sorted(tok.languages.values()))
            for j, lang in zip(unknown, found):
                group[j].language = lang
        prompts = [_prompt(tok, r, opts, limit) for r in group]
        decoded = _decode(decoder, cross, [p for p, _ in prompts], [h for _, h in prompts],
                          s, opts.num_beams)
        for i, r, d, size in zip(active, group, decoded, sizes):
            _advance(r, d, size, tok, opts, durations[i])
    out = []
    for r in recs:
        result: dict[str, Any] = {"text": "".join(r.pieces).strip()}
        if opts.timestamps:
            result["segments"] = r.segments
        if tok.multilingual and r.language is not None:
            result["language"] = tok.language_code(r.language)
        out.append(result)
    return out
