"""The body decoders against h11, the oracle: the same bytes and the same rejections, on any cut of the input."""

from __future__ import annotations

import itertools

import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters._http1 import MAX_LINE, BodyDecoder, ChunkedBody, LengthBody, UntilCloseBody, body_decoder


def h11_body(head: bytes, body: bytes, eof: bool) -> tuple[bytes, bool]:
    """What h11 makes of a response body: its bytes, and whether it is complete and sound (else broken)."""
    connection = h11.Connection(h11.CLIENT)
    connection.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
    connection.receive_data(head + body)
    if eof:
        connection.receive_data(b"")
    data = b""
    try:
        while True:
            event = connection.next_event()
            if isinstance(event, h11.Data):
                data += event.data
            elif isinstance(event, h11.EndOfMessage):
                return data, True
            elif event is h11.NEED_DATA or isinstance(event, h11.ConnectionClosed):
                return data, False
    except h11.RemoteProtocolError:
        return data, False


def ours(decoder: BodyDecoder, pieces: list[bytes], eof: bool) -> tuple[bytes, bool]:
    data = b""
    for piece in pieces:
        data += decoder.feed(piece)
        if decoder.finished:
            break
    if eof and not decoder.finished:
        decoder.end()
    return data, decoder.done and decoder.error is None


def cut(data: bytes, points: list[int]) -> list[bytes]:
    edges = sorted({min(p, len(data)) for p in points} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(edges)] or [b""]


CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"

chunk_data = st.binary(min_size=1, max_size=40)
extensions = st.sampled_from([b"", b";a=b", b"; x", b';q="1;2"', b"  ", b";\tz\t"])
trailers = st.lists(
    st.sampled_from([b"X-Trace: 1", b"Checksum:   ab cd  ", b"Empty:", b" folded on", b"Bad Name: v", b"x: a\x00b"]),
    max_size=3,
)


@st.composite
def chunked_bodies(draw: st.DrawFn) -> bytes:
    """A chunked body: valid, or valid but for a twist (a byte changed, cut, or added)."""
    body = b""
    for data in draw(st.lists(chunk_data, max_size=6)):
        size = draw(st.sampled_from(["%x", "%X", "%04x"])) % len(data)
        body += size.encode() + draw(extensions) + b"\r\n" + data + b"\r\n"
    body += b"0" + draw(extensions) + b"\r\n"
    body += b"".join(t + draw(st.sampled_from([b"\r\n", b"\n"])) for t in draw(trailers))
    body += draw(st.sampled_from([b"\r\n", b"\n"]))
    twist = draw(st.sampled_from(["none", "none", "flip", "drop", "insert"]))
    if twist != "none" and body:
        at = draw(st.integers(0, len(body) - 1))
        byte = bytes([draw(st.sampled_from(b"0aF;\r\n \tZ\x00"))])
        body = {
            "flip": body[:at] + byte + body[at + 1 :],
            "drop": body[:at] + body[at + 1 :],
            "insert": body[:at] + byte + body[at:],
        }[twist]
    return body + draw(st.sampled_from([b"", b"HTTP/1.1 200 OK\r\n"]))  # what follows the body is not read


@settings(max_examples=3000, deadline=None)
@given(body=chunked_bodies(), points=st.lists(st.integers(0, 400), max_size=8), eof=st.booleans())
def test_a_chunked_body_decodes_as_h11_decodes_it(body: bytes, points: list[int], eof: bool) -> None:
    expected_data, expected_sound = h11_body(CHUNKED_HEAD, body, eof)
    data, sound = ours(ChunkedBody(), cut(body, points), eof)
    assert sound == expected_sound
    if sound:
        assert data == expected_data
    else:  # ours joins a read's bytes and stops at a fault: what came before it is all delivered
        assert expected_data.startswith(data) or data.startswith(expected_data)


@settings(max_examples=500, deadline=None)
@given(
    length=st.integers(0, 60),
    body=st.binary(max_size=80),
    points=st.lists(st.integers(0, 100), max_size=5),
    eof=st.booleans(),
)
def test_a_length_delimited_body_decodes_as_h11_decodes_it(
    length: int, body: bytes, points: list[int], eof: bool
) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % length
    assert ours(LengthBody(length), cut(body, points), eof) == h11_body(head, body, eof)


@given(body=st.binary(max_size=80), points=st.lists(st.integers(0, 100), max_size=5), eof=st.booleans())
def test_a_body_without_length_runs_until_the_connection_closes(body: bytes, points: list[int], eof: bool) -> None:
    head = b"HTTP/1.1 200 OK\r\n\r\n"
    assert ours(UntilCloseBody(), cut(body, points), eof) == h11_body(head, body, eof)


def test_the_bytes_before_a_fault_in_a_read_are_delivered_and_the_fault_stops_the_body() -> None:
    decoder = ChunkedBody()
    assert decoder.feed(b"2\r\nab\r\n3\r\ncdeXX") == b"abcde"
    assert decoder.error is not None and "chunk footer" in decoder.error
    assert decoder.feed(b"4\r\nmore\r\n") == b"", "nothing is read past a fault"


def test_a_chunk_header_that_never_ends_is_refused_at_h11s_limit() -> None:
    decoder = ChunkedBody()
    decoder.feed(b"1" * MAX_LINE)
    assert decoder.error is None, "up to the limit it may still end"
    decoder.feed(b"1")
    assert decoder.error == "Receive buffer too long"


def test_a_large_chunk_is_delivered_as_it_arrives() -> None:
    decoder = ChunkedBody()
    assert decoder.feed(b"100000\r\n" + b"a" * 10) == b"a" * 10
    assert decoder.feed(b"b" * 20) == b"b" * 20
    assert not decoder.finished


@pytest.mark.parametrize(
    ("method", "status", "headers", "framing"),
    [
        ("POST", 200, [(b"transfer-encoding", b"chunked"), (b"content-length", b"5")], ChunkedBody),
        ("POST", 200, [(b"content-length", b"5")], LengthBody),
        ("POST", 200, [], UntilCloseBody),
        ("POST", 204, [(b"transfer-encoding", b"chunked")], LengthBody),
        ("POST", 304, [], LengthBody),
        ("HEAD", 200, [(b"content-length", b"5")], LengthBody),
    ],
)
def test_the_framing_follows_rfc_9112(
    method: str, status: int, headers: list[tuple[bytes, bytes]], framing: type[BodyDecoder]
) -> None:
    decoder = body_decoder(method, status, headers)
    assert type(decoder) is framing
    if status in (204, 304) or method == "HEAD":
        assert decoder.done, "no body at all"
