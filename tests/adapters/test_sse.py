"""The SSE decoder: WHATWG examples, chunk boundaries anywhere, and properties over random input."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import example, given, note
from hypothesis import strategies as st

from conform.adapters import SSEDecoder, SSEError, SSEEvent


def decode_all(chunks: list[bytes], max_event_bytes: int | None = None) -> tuple[list[SSEEvent], SSEDecoder]:
    decoder = SSEDecoder() if max_event_bytes is None else SSEDecoder(max_event_bytes)
    events: list[SSEEvent] = []
    for chunk in chunks:
        events.extend(decoder.feed(chunk))
    return events, decoder


def test_worked_example_from_the_wire_notes() -> None:
    stream = (
        b": ping\n\n"
        b'data: {"n":1}\n\n'
        b'data:{"n":2}\n\n'
        b"event: delta\ndata: first line\ndata: second line\nid: 7\n\n"
        b"data\nretry: abc\n\n"
        b'data: {"n":3}\n'
    )
    events, decoder = decode_all([stream])
    assert [(e.event, e.data) for e in events] == [
        ("message", '{"n":1}'),
        ("message", '{"n":2}'),
        ("delta", "first line\nsecond line"),
        ("message", ""),
    ]
    assert events[2].id == "7"
    assert events[3].id == "7", "the last event id persists across events"
    assert events[3].retry is None, "a non-numeric retry is ignored"
    assert decoder.comments == 1
    assert decoder.pending, "the last event never got its blank line"


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_every_line_ending_gives_the_same_events(newline: bytes) -> None:
    stream = b"data: a" + newline + b"data: b" + newline + newline + b"data: c" + newline + newline
    events, _ = decode_all([stream])
    assert [e.data for e in events] == ["a\nb", "c"]


def test_crlf_split_across_chunks_is_one_line_end() -> None:
    events, _ = decode_all([b"data: a\r", b"\n\r", b"\ndata: b\r\n\r\n"])
    assert [e.data for e in events] == ["a", "b"]


def test_cr_at_chunk_end_followed_by_data_is_a_line_end() -> None:
    events, _ = decode_all([b"data: a\r", b"\r", b"data: b\r\r"])
    assert [e.data for e in events] == ["a", "b"]


def test_only_one_leading_space_is_removed() -> None:
    events, _ = decode_all([b"data:  two spaces\n\n"])
    assert events[0].data == " two spaces"


def test_bom_is_dropped_only_at_stream_start() -> None:
    events, _ = decode_all([b"\xef\xbb", b"\xbfdata: x\n\n", b"data: \xef\xbb\xbfy\n\n"])
    assert [e.data for e in events] == ["x", "\ufeffy"]


def test_event_without_data_is_not_dispatched() -> None:
    events, decoder = decode_all([b"event: ping\n\n", b"id: 3\n\n", b"data: after\n\n"])
    assert [(e.event, e.data, e.id) for e in events] == [("message", "after", "3")]
    assert not decoder.pending


def test_unicode_line_separators_are_data_not_line_ends() -> None:
    events, _ = decode_all(["data: a\u2028b\u0085c\x1cd\n\n".encode()])
    assert events[0].data == "a\u2028b\u0085c\x1cd"


def test_multibyte_character_split_across_chunks() -> None:
    encoded = "data: héllo ✓\n\n".encode()
    events, _ = decode_all([encoded[i : i + 1] for i in range(len(encoded))])
    assert events[0].data == "héllo ✓"


def test_oversized_line_is_an_error_not_unbounded_memory() -> None:
    decoder = SSEDecoder(max_event_bytes=1024)
    with pytest.raises(SSEError, match="exceeds 1024 bytes"):
        for _ in range(10):
            decoder.feed(b"data: " + b"x" * 200)


def test_oversized_event_of_many_lines_is_an_error() -> None:
    decoder = SSEDecoder(max_event_bytes=1024)
    with pytest.raises(SSEError, match="exceeds 1024 bytes"):
        decoder.feed(b"data: " + b"x" * 100 + b"\n" * 1 + (b"data: " + b"y" * 100 + b"\n") * 20)


# -- properties -------------------------------------------------------------------------------------

_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=40)
_events = st.lists(
    st.tuples(st.sampled_from([None, "delta", "error"]), st.lists(_text, min_size=1, max_size=3)),
    max_size=8,
)


def _encode(events: list[tuple[str | None, list[str]]], newline: bytes, space: bool) -> bytes:
    out = bytearray()
    colon = b": " if space else b":"
    for event, lines in events:
        if event is not None:
            out += b"event" + colon + event.encode() + newline
        for line in lines:
            # Without the space, a value that starts with a space would lose it: keep the round trip exact.
            value = line.encode()
            out += b"data" + (b": " if value.startswith(b" ") else colon) + value + newline
        out += newline
    return bytes(out)


@st.composite
def encoded_and_cut(draw: st.DrawFn) -> tuple[list[tuple[str | None, list[str]]], bytes, list[int]]:
    events = draw(_events)
    newline = draw(st.sampled_from([b"\n", b"\r\n", b"\r"]))
    encoded = _encode(events, newline, draw(st.booleans()))
    cuts = sorted(draw(st.lists(st.integers(0, len(encoded)), max_size=12)))
    return events, encoded, cuts


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


@given(encoded_and_cut())
@example(([(None, ["a"])], b"data: a\r\n\r\n", [8]))
@example(([(None, ["a"])], b"data: a\r\r", [8]))
def test_round_trip_on_any_chunking(
    case: tuple[list[tuple[str | None, list[str]]], bytes, list[int]],
) -> None:
    events, encoded, cuts = case
    chunks = _chunks(encoded, cuts)
    note(f"chunks={chunks!r}")
    decoded, decoder = decode_all(chunks)
    assert [(e.event, e.data) for e in decoded] == [(ev or "message", "\n".join(lines)) for ev, lines in events]
    assert not decoder.pending


@given(st.binary(max_size=300), st.lists(st.integers(0, 300), max_size=10))
def test_chunked_equals_whole(data: bytes, cuts: list[int]) -> None:
    cuts = sorted(c for c in cuts if c <= len(data))
    whole, _ = decode_all([data])
    chunked, _ = decode_all(_chunks(data, cuts))
    assert chunked == whole


@given(st.lists(st.binary(max_size=64), max_size=20))
def test_random_bytes_yield_events_or_our_error(chunks: list[bytes]) -> None:
    decoder = SSEDecoder(max_event_bytes=256)
    try:
        for chunk in chunks:
            for event in decoder.feed(chunk):
                assert isinstance(event, SSEEvent)
    except SSEError:
        pass


_line = st.one_of(
    _text.map(lambda t: "data: " + t),
    _text.map(lambda t: "data:" + t),
    st.sampled_from(["", "", "", ": keep-alive", "event: delta", "id: 7", "retry: 100", "data"]),
)


@given(st.lists(_line, max_size=30))
@example(["data: a", "", "data: b", "", "data: c"])
@example(["data: a", "", "data: b", "id: 7", ""])
def test_a_read_of_many_events_decodes_as_the_same_bytes_one_at_a_time(lines: list[str]) -> None:
    """Oracle for the one-split fast path: fed whole, the bytes give what they give fed byte by byte
    (single bytes never hold two events, so they always take the general path)."""
    data = ("\n".join(lines) + "\n").encode()
    whole, _ = decode_all([data])
    bytewise, _ = decode_all([data[i : i + 1] for i in range(len(data))])
    assert whole == bytewise


@given(st.lists(_line, max_size=30), st.lists(st.integers(0, 400), max_size=6))
@example(["data: a", "", "data: b", "", "data: c"], [])
@example(["data: a", "", "data: b", "", "data: c", "", "event: delta", "data: d", ""], [9])
@example(["data: a", "", "id: 7", "data: b", ""], [])
def test_feed_data_gives_the_data_of_the_events_that_feed_gives(lines: list[str], cuts: list[int]) -> None:
    """Oracle for the data-only reader: on any lines, however cut, the data of each event and nothing else,
    with the same state carried from read to read (a read's fast path must not lose an event begun in it)."""
    data = ("\n".join(lines) + "\n").encode()
    chunks = _chunks(data, sorted(c for c in cuts if c <= len(data)))
    note(f"chunks={chunks!r}")
    events, data_only = SSEDecoder(), SSEDecoder()
    for chunk in chunks:
        assert data_only.feed_data(chunk) == [event.data for event in events.feed(chunk)]
    assert data_only.pending == events.pending
