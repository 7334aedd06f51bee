"""Seeded, deterministic token generation for stub engines.

The same (seed, prompt) always yields the same tokens, on every stub, in every
process: the stream is derived from SHA-256, never from Python's salted hash.
"""

from __future__ import annotations

import hashlib
import random
import re
import zlib
from typing import NamedTuple, Protocol

__all__ = [
    "MULTIBYTE",
    "VOCABULARY",
    "StubToken",
    "TokenGenerator",
    "detokenize",
    "echo_tokens",
    "generate_tokens",
    "split_characters",
    "tokenize",
]

_WORDS = (  # noqa: SIM905  (one readable block of words, split once at import)
    "the of and to in is was for on that with as by at from his her it an were are which this "
    "be or has had not but also first one their its new after who they two have been more "
    "other time during into all most some would school only there world city where when over "
    "can three many years while state about then these between under made river light stone "
    "engine token stream model answer small large quiet bright early late north south east "
    "west water fire paper glass metal signal window garden market bridge tower "
).split()

VOCABULARY: tuple[str, ...] = (*tuple(" " + w for w in _WORDS), ".", ",", "\n")
"""Token text by id; ids start at 100 so that they never look like special tokens."""

MULTIBYTE: tuple[str, ...] = (
    "日本", "の", "首都", "東京", "は", "。", "、", "我", "今天", "很", "高兴", " café", " déjà", " naïve",
    " crème", " brûlée", " 🌊", " 🐟", " 🐚",
)  # fmt: skip
"""Tokens of several UTF-8 bytes each, drawn (besides the vocabulary) for a prompt that is not ASCII: their
ids follow the vocabulary's, so a prompt in ASCII gets the same tokens as ever."""

_ALL = VOCABULARY + MULTIBYTE

_FIRST_ID = 100


class StubToken(NamedTuple):
    """A NamedTuple: a stub makes one per token, hundreds of thousands per second."""

    id: int
    text: str
    logprob: float


class TokenGenerator(Protocol):
    def __call__(self, seed: int, prompt: str, count: int, *, salt: str = "") -> list[StubToken]: ...


def generate_tokens(seed: int, prompt: str, count: int, *, salt: str = "") -> list[StubToken]:
    """`count` tokens determined by seed, prompt and an optional salt (a 'changed model')."""
    digest = hashlib.sha256(f"{salt}\x00{seed}\x00{prompt}".encode()).digest()
    rng = random.Random(int.from_bytes(digest[:16], "big"))
    choices = len(VOCABULARY) if prompt.isascii() else len(_ALL)
    tokens = []
    for _ in range(count):
        # Draw each token whole, so that the first k tokens do not depend on how many are asked for.
        pick = rng.randrange(choices)
        tokens.append(StubToken(_FIRST_ID + pick, _ALL[pick], -round(rng.random() * 4.0, 6)))
    return tokens


def split_characters(tokens: list[StubToken]) -> list[StubToken]:
    """Each token that holds a character of several bytes, as two tokens cut inside that character, each
    decoded on its own: the U+FFFD a server streams when it sends a character's bytes before the last."""
    split: list[StubToken] = []
    for token in tokens:
        data = token.text.encode()
        at = next((n for n, c in enumerate(token.text) if len(c.encode()) > 1), None)
        if at is None:
            split.append(token)
            continue
        cut = len(token.text[:at].encode()) + 1
        split.append(token._replace(text=data[:cut].decode("utf-8", "replace")))
        split.append(token._replace(text=data[cut:].decode("utf-8", "replace")))
    return split


_WORD = re.compile(r"\s*\S+")


def echo_tokens(seed: int, prompt: str, count: int, *, salt: str = "") -> list[StubToken]:
    """The prompt's words (with their leading space) as tokens, repeated to `count`; the seed is irrelevant.

    A salt (a scripted misbehaviour: ignored seed, changed generator) marks each
    word, so that the determinism suite can still catch what the script does.
    """
    words = _WORD.findall(prompt) or [" "]
    tokens = []
    for n in range(count):
        text = words[n % len(words)]
        if salt:
            text += f"~{zlib.crc32(f'{salt}/{n}'.encode()) % 97}"
        tokens.append(StubToken(_FIRST_ID + zlib.crc32(text.encode()) % 100_000, text, 0.0))
    return tokens


def tokenize(text: str) -> list[int]:
    """The stub's tokenizer: a token per word (at least one), the id a word's vocabulary id where it has one."""
    by_text = {word: _FIRST_ID + n for n, word in enumerate(_ALL)}
    words = [" " + word for word in text.split()] or [" "]
    return [by_text.get(word, _FIRST_ID + len(_ALL) + zlib.crc32(word.encode()) % 100_000) for word in words]


def detokenize(ids: list[int]) -> str:
    """The text of token ids the stub generated (its vocabulary); an id it never generates reads as ``<unk>``."""
    return "".join(_ALL[i - _FIRST_ID] if 0 <= i - _FIRST_ID < len(_ALL) else "<unk>" for i in ids)
