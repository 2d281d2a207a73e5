"""Display copies of item images: small images upscaled, large ones shrunk, cached as PNG bytes.

Every image the app shows passes through :class:`ImageCache`, which reads only files that
resolve (links followed) inside the project's root: a tampered row (``../../etc/passwd``,
an absolute path) or a link swapped after ingest to point elsewhere is refused.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from pathlib import Path

from PIL import Image

from core.images.decode import open_rgb
from services.errors import UserError

# Up to this size an image is enlarged with nearest-neighbour (crisp pixels, nothing invented);
# larger ones are resized with bicubic interpolation.
PIXEL_ART_MAX_SIDE = 64


def render(path: Path, side: int) -> bytes:
    """The image at ``path`` (first frame, the right way up) fitted into a ``side`` x ``side`` box, as PNG bytes."""
    picture = open_rgb(path)
    scale = side / max(picture.size)
    size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
    resample = Image.Resampling.NEAREST if max(picture.size) <= PIXEL_ART_MAX_SIDE else Image.Resampling.BICUBIC
    buffer = io.BytesIO()
    picture.resize(size, resample).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def inside_root(root: Path, relative: str) -> Path:
    """``root / relative`` with every link resolved; a UserError if that is not inside ``root``."""
    real_root = Path(root).resolve()
    target = (real_root / relative).resolve()
    if not target.is_relative_to(real_root):
        raise UserError(
            f"item path {relative!r} resolves outside the project root {real_root}; "
            "it is not shown. Ingest the file under the root instead"
        )
    return target


class ImageCache:
    """Thread-safe LRU of rendered images keyed by (item id, side).

    Parameters
    ----------
    root : Path
        Project root; item paths are relative to it.
    capacity : int
        Rendered images kept.
    """

    def __init__(self, root: Path, *, capacity: int = 512) -> None:
        self.root = Path(root)
        self.capacity = capacity
        self._images: OrderedDict[tuple[int, int], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, item_id: int, path: str, side: int) -> bytes:
        """PNG bytes of the item at ``side`` pixels; rendered on a miss."""
        key = (item_id, side)
        with self._lock:
            if key in self._images:
                self._images.move_to_end(key)
                return self._images[key]
        data = render(inside_root(self.root, path), side)
        with self._lock:
            self._images[key] = data
            while len(self._images) > self.capacity:
                self._images.popitem(last=False)
        return data
