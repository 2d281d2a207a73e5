"""Small image files built in tests."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

from PIL import Image


def image_bytes(seed: int, *, image_format: str = "PNG", size: tuple[int, int] = (8, 8)) -> bytes:
    """Return a small image whose pixels (and so content hash) depend on ``seed``."""
    image = Image.new("RGB", size, color=(seed % 256, (seed // 256) % 256, 7))
    buffer = io.BytesIO()
    image.save(buffer, format=image_format)
    return buffer.getvalue()


def write_image(path: Path, seed: int, *, image_format: str = "PNG", size: tuple[int, int] = (8, 8)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(image_bytes(seed, image_format=image_format, size=size))
    return path


def png_header_claiming(width: int, height: int) -> bytes:
    """A well-formed PNG whose header claims ``width`` x ``height`` pixels, with almost no pixel data."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + _png_chunk(b"IEND", b"")
    )


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
