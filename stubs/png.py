"""A real PNG, made without an imaging library: what the llama-swap stub's image generation returns."""

from __future__ import annotations

import hashlib
import struct
import zlib

__all__ = ["PNG_SIGNATURE", "make_png"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def make_png(width: int, height: int, prompt: str, seed: int) -> bytes:
    """An 8-bit RGB image whose colours follow from (prompt, seed): the same request, the same bytes."""
    base = hashlib.sha256(f"{seed}:{prompt}".encode()).digest()
    rows = bytearray()
    for y in range(height):
        rows.append(0)  # filter type: none
        for x in range(width):
            rows += bytes(((base[0] + 3 * x) % 256, (base[1] + 3 * y) % 256, (base[2] + x + y) % 256))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(bytes(rows))) + _chunk(b"IEND", b"")
