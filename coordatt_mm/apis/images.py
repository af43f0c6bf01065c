"""Finding and decoding user images robustly (any mode, EXIF orientation, bad files)."""
import glob
import os
import os.path as osp
from typing import Iterator, List, Tuple

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


class ImageReadError(Exception):
    """An input file that cannot be used as an image; the message says why."""


def _is_image_name(path: str) -> bool:
    return osp.splitext(path)[1].lower() in IMAGE_EXTENSIONS


def list_inputs(spec: str) -> Tuple[str, List[str]]:
    """(base directory, sorted image paths) for a file, a folder (recursive) or a glob."""
    if osp.isdir(spec):
        found = []
        for root, dirs, files in os.walk(spec):
            dirs.sort()
            found += [osp.join(root, f) for f in files if _is_image_name(f)]
        return spec, sorted(found)
    if osp.isfile(spec):
        return osp.dirname(spec) or '.', [spec]
    if glob.has_magic(spec):
        parts = spec.split(os.sep)
        fixed = [p for p in parts[:next(i for i, p in enumerate(parts) if glob.has_magic(p))]]
        base = os.sep.join(fixed) or '.'
        hits = [p for p in glob.glob(spec, recursive=True) if osp.isfile(p) and _is_image_name(p)]
        return base, sorted(hits)
    return osp.dirname(spec) or '.', []


def read_image(path: str) -> np.ndarray:
    """An RGB uint8 array of the image as it is meant to be seen (EXIF orientation applied).

    Grey, palette, RGBA, CMYK and 16-bit images are converted; empty, truncated or
    non-image files raise :class:`ImageReadError`.
    """
    if osp.getsize(path) == 0:
        raise ImageReadError('empty file (0 bytes)')
    try:
        with Image.open(path) as im:
            im.load()
            im = ImageOps.exif_transpose(im)
            if im.mode in ('I;16', 'I;16B', 'I;16L', 'I'):
                arr = np.asarray(im, dtype=np.float64)
                hi = 65535.0 if arr.max() > 255 else 255.0
                im = Image.fromarray(np.clip(arr / hi * 255 + 0.5, 0, 255).astype(np.uint8))
            elif im.mode == 'F':
                arr = np.asarray(im, dtype=np.float64)
                span = max(float(arr.max() - arr.min()), 1e-12)
                im = Image.fromarray(((arr - arr.min()) / span * 255).astype(np.uint8))
            if im.mode in ('RGBA', 'LA') or (im.mode == 'P' and 'transparency' in im.info):
                rgba = im.convert('RGBA')
                white = Image.new('RGBA', rgba.size, (255, 255, 255, 255))
                im = Image.alpha_composite(white, rgba)
            return np.ascontiguousarray(np.asarray(im.convert('RGB')))
    except UnidentifiedImageError:
        raise ImageReadError('not an image (unrecognised format)') from None
    except Image.DecompressionBombError as e:
        raise ImageReadError(f'too large to decode safely ({e})') from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageReadError(f'unreadable image ({e})') from None


def iter_images(paths: List[str]) -> Iterator[Tuple[str, object]]:
    """Yield (path, RGB array) or (path, ImageReadError) one at a time (bounded memory)."""
    for p in paths:
        try:
            yield p, read_image(p)
        except ImageReadError as e:
            yield p, e
