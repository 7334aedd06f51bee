"""The NDJSON splitter: the same lines on every chunk boundary, bounded memory, only its own error type."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conform.adapters._ndjson import NDJSONDecoder, NDJSONError

OBJECTS = st.lists(
    st.dictionaries(st.text(max_size=8), st.one_of(st.integers(), st.text(max_size=20), st.booleans()), max_size=4),
    max_size=12,
)


def _feed_in_pieces(data: bytes, cuts: list[int]) -> tuple[list[str], bool]:
    decoder = NDJSONDecoder()
    lines: list[str] = []
    start = 0
    for cut in [*sorted({c % (len(data) + 1) for c in cuts}), len(data)]:
        lines += decoder.feed(data[start:cut])
        start = cut
    return lines, decoder.pending


@given(OBJECTS, st.lists(st.integers(min_value=0), max_size=20), st.booleans())
def test_any_chunking_gives_the_same_lines(objects: list[dict[str, object]], cuts: list[int], crlf: bool) -> None:
    ending = "\r\n" if crlf else "\n"
    data = "".join(json.dumps(o, ensure_ascii=False) + ending for o in objects).encode()
    lines, pending = _feed_in_pieces(data, cuts)
    assert [json.loads(line) for line in lines] == objects
    assert not pending


def test_a_multibyte_character_split_across_chunks_is_joined() -> None:
    data = '{"response":"héllo — ✓"}\n'.encode()
    split = data.index("✓".encode()) + 1
    decoder = NDJSONDecoder()
    assert decoder.feed(data[:split]) == []
    assert decoder.feed(data[split:]) == ['{"response":"héllo — ✓"}']


def test_a_body_cut_inside_a_line_is_pending() -> None:
    decoder = NDJSONDecoder()
    assert decoder.feed(b'{"done":false}\n{"done":tr') == ['{"done":false}']
    assert decoder.pending


def test_a_line_over_the_limit_raises_without_buffering_it() -> None:
    decoder = NDJSONDecoder(max_line_bytes=64)
    with pytest.raises(NDJSONError, match="over the limit of 64"):
        for _ in range(10):
            decoder.feed(b"x" * 20)


def test_invalid_utf8_names_the_line() -> None:
    with pytest.raises(NDJSONError, match="line 2 is not UTF-8"):
        NDJSONDecoder().feed(b'{"a":1}\n{"b":"\xff"}\n')


@given(st.lists(st.binary(max_size=64), max_size=20))
def test_random_bytes_raise_only_ndjson_errors(chunks: list[bytes]) -> None:
    decoder = NDJSONDecoder(max_line_bytes=100)
    try:
        for chunk in chunks:
            for line in decoder.feed(chunk):
                assert "\n" not in line
    except NDJSONError:
        pass
