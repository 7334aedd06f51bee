"""SSE decoding, bytes to events: ours vs httpx-sse vs the openai SDK's decoder, on the same streams.

The streams are what the engines send (OpenAI chat chunks, llama.cpp frames,
TGI frames), cut into the chunk sizes a socket delivers while tokens stream.
Every decoder must produce the same (event, data) sequence, or the benchmark
fails: a fast decoder that is wrong measures nothing.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator, Sequence

from conform.adapters import SSEDecoder

from ._table import Row

__all__ = ["recorded_streams", "run"]

Decoded = list[tuple[str, str]]


def _openai_frames(n: int) -> bytes:
    chunks = []
    for i in range(n):
        chunk = {
            "id": "chatcmpl-9a8b7c",
            "object": "chat.completion.chunk",
            "created": 1767225600,
            "model": "gemma-3-270m",
            "system_fingerprint": "b6000-abcdef",
            "choices": [{"index": 0, "delta": {"content": f" word{i % 97}"}, "logprobs": None, "finish_reason": None}],
        }
        chunks.append(b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n")
    return b"".join(chunks) + b"data: [DONE]\n\n"


def _llamacpp_frames(n: int) -> bytes:
    frames = []
    for i in range(n):
        frame = {
            "index": 0,
            "content": f" word{i % 97}",
            "tokens": [1000 + i % 97],
            "stop": False,
            "id_slot": 0,
            "tokens_predicted": i + 1,
            "tokens_evaluated": 9,
        }
        frames.append(b"data: " + json.dumps(frame, separators=(",", ":")).encode() + b"\n\n")
    return b"".join(frames)


def _tgi_frames(n: int) -> bytes:
    frames = []
    for i in range(n):
        frame = {
            "index": i,
            "token": {"id": 1000 + i % 97, "text": f" word{i % 97}", "logprob": -0.25, "special": False},
            "generated_text": None,
            "details": None,
        }
        frames.append(b"data:" + json.dumps(frame, separators=(",", ":")).encode() + b"\n\n")
    frames.append(b":\n\n")  # TGI's keep-alive comment
    return b"".join(frames)


def _cut(data: bytes, rng: random.Random) -> list[bytes]:
    """Chunk sizes of a live token stream: mostly one or a few frames, sometimes a larger read."""
    chunks = []
    position = 0
    while position < len(data):
        size = rng.choice((64, 128, 256, 512, 1024, 4096))
        chunks.append(data[position : position + size])
        position += size
    return chunks


def recorded_streams(events: int) -> dict[str, list[bytes]]:
    rng = random.Random(7)
    return {
        "openai": _cut(_openai_frames(events), rng),
        "llamacpp": _cut(_llamacpp_frames(events), rng),
        "tgi": _cut(_tgi_frames(events), rng),
    }


def decode_ours(chunks: Sequence[bytes]) -> Decoded:
    decoder = SSEDecoder()
    out: Decoded = []
    for chunk in chunks:
        out.extend((e.event, e.data) for e in decoder.feed(chunk))
    return out


def decode_openai(chunks: Sequence[bytes]) -> Decoded:
    from openai._streaming import SSEDecoder as OpenAIDecoder

    return [(e.event or "message", e.data) for e in OpenAIDecoder().iter_bytes(iter(chunks))]


def decode_httpx_sse(chunks: Sequence[bytes]) -> Decoded:
    """httpx-sse's own path: httpx decodes text and splits lines, httpx-sse decodes each line."""
    from httpx._decoders import LineDecoder, TextDecoder
    from httpx_sse._decoders import SSEDecoder as HttpxSSEDecoder

    text, lines, decoder = TextDecoder(), LineDecoder(), HttpxSSEDecoder()
    out: Decoded = []
    for chunk in chunks:
        for line in lines.decode(text.decode(chunk)):
            event = decoder.decode(line)
            if event is not None:
                out.append((event.event, event.data))
    return out


DECODERS: dict[str, Callable[[Sequence[bytes]], Decoded]] = {
    "ours": decode_ours,
    "httpx-sse": decode_httpx_sse,
    "openai SDK": decode_openai,
}


def _rates(streams: dict[str, list[bytes]], repeats: int) -> dict[str, float]:
    """Best events/s of each decoder over `repeats` rounds; each round runs every decoder once, in
    turn, so that a change in machine load during the benchmark falls on all of them alike."""
    best = dict.fromkeys(DECODERS, float("inf"))
    count = sum(len(decode_ours(chunks)) for chunks in streams.values())
    for _ in range(repeats):
        for name, decode in DECODERS.items():
            start = time.perf_counter()
            for chunks in streams.values():
                decode(chunks)
            best[name] = min(best[name], time.perf_counter() - start)
    return {name: count / seconds for name, seconds in best.items()}


def _iter_checked(streams: dict[str, list[bytes]]) -> Iterator[str]:
    for name, chunks in streams.items():
        reference = decode_ours(chunks)
        for decoder, decode in DECODERS.items():
            if decode(chunks) != reference:
                yield f"{decoder} decodes the {name} stream differently"


def run(quick: bool = False) -> list[Row]:
    streams = recorded_streams(200 if quick else 20_000)
    mismatches = list(_iter_checked(streams))
    if mismatches:
        raise AssertionError("; ".join(mismatches))
    rates = _rates(streams, 1 if quick else 7)
    ours = rates["ours"]
    return [
        Row(
            "SSE decode vs openai SDK",
            ours,
            "events/s",
            ">= 2.0x",
            ours >= 2.0 * rates["openai SDK"],
            rates["openai SDK"],
            "openai SDK decoder",
            "same (event, data) output checked on all 3 streams",
        ),
        Row(
            "SSE decode vs httpx-sse",
            ours,
            "events/s",
            ">= 1.5x",
            ours >= 1.5 * rates["httpx-sse"],
            rates["httpx-sse"],
            "httpx-sse + httpx lines",
        ),
    ]
