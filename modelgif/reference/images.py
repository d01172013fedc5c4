"""Image decoding and resizing for the reference set (docs/METHOD.md, step 1).

Decoding (:func:`decode_image`) gives uint8 RGB at the file's own resolution:

- 8-bit images of any PIL mode (grey, palette, RGBA, CMYK, …): PIL's ``convert("RGB")``;
- 16-bit images are scaled to 8 bits by keeping the high byte, ``v >> 8`` (= ⌊v / 256⌋),
  which is what PIL itself does for 16-bit-per-channel colour PNGs. A 16-bit grey image
  (PIL mode ``I;16`` or ``I``) is scaled the same way before it is converted, so a mid-grey
  32768 stays mid-grey (128) instead of being clipped to 255;
- floating-point images (PIL mode ``F``) are refused;
- an image of more than :data:`MAX_IMAGE_PIXELS` pixels is refused from its header, before
  any pixel is decoded (PIL's own ``Image.MAX_IMAGE_PIXELS`` only warns below twice its
  89-megapixel default, and a batch of eight such images would need gigabytes).

Resizing (:func:`resize_crop`): PIL bilinear so that the shorter side is ``size`` (the longer
side becomes ``int(size * long / short)``, as torchvision's ``Resize(size)`` does), then a
centre crop of ``size × size``.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

#: Largest image decoded (pixels, width × height): 4096 × 4096 = 16.8 megapixels, 50 MiB as
#: 8-bit RGB (a CutMix batch of 8: 400 MiB); 64 times a 512 × 512 Taskonomy image.
MAX_IMAGE_PIXELS = 4096 * 4096


def check_image_pixels(image: Image.Image, name: str, where: str, limit: int | None = None) -> None:
    """Refuse an opened (not yet decoded) image of more than ``limit`` pixels (default
    :data:`MAX_IMAGE_PIXELS`, read at call time): ``ValueError`` naming the file and the limit."""
    limit = MAX_IMAGE_PIXELS if limit is None else limit
    w, h = image.size
    if w * h > limit:
        raise ValueError(f"image {name} in {where} is {w}×{h} = {w * h} pixels, over the limit of {limit} pixels "
                         f"per image (modelgif.reference.images.MAX_IMAGE_PIXELS); downscale it first")


def to_rgb8(image: Image.Image) -> np.ndarray:
    """A PIL image as uint8 RGB (3, H, W), 16-bit grey scaled by ``v >> 8`` (module docstring)."""
    if image.mode == "F":
        raise ValueError("floating-point (mode F) images are not supported; save it as 8- or 16-bit")
    if image.mode == "I" or image.mode.startswith("I;16"):
        values = np.asarray(image).astype(np.int64)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise ValueError(f"{image.mode} image with values {values.min()}..{values.max()}, outside 16-bit 0..65535")
        grey = (values >> 8).astype(np.uint8)
        return np.repeat(grey[None], 3, axis=0)
    return np.asarray(image.convert("RGB"), dtype=np.uint8).transpose(2, 0, 1).copy()


def decode_image(data: bytes, name: str, where: str) -> np.ndarray:
    """Decode one image file's bytes to uint8 RGB (3, H, W) at its own resolution.

    Raises:
        ValueError: not a readable image, or one over :data:`MAX_IMAGE_PIXELS` (refused from
            its header, before decoding); the message names ``name`` in ``where``.
    """
    try:
        image = Image.open(io.BytesIO(data))  # reads the header only
    except Exception as e:  # noqa: BLE001 - PIL raises many types for a bad file
        raise ValueError(f"cannot read image {name} in {where}: {e}") from e
    with image:
        check_image_pixels(image, name, where)
        try:
            return to_rgb8(image)
        except Exception as e:  # noqa: BLE001 - PIL raises many types for a bad file
            raise ValueError(f"cannot read image {name} in {where}: {e}") from e


def resize_crop(image: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of the shorter side to ``size``, then centre crop ``size × size``.

    Args:
        image: uint8 (3, H, W).

    Returns:
        uint8 (3, size, size).
    """
    pil = Image.fromarray(np.ascontiguousarray(image.transpose(1, 2, 0)))
    w, h = pil.size
    new = (size, int(size * h / w)) if w <= h else (int(size * w / h), size)
    pil = pil.resize(new, Image.BILINEAR)
    left, top = (new[0] - size) // 2, (new[1] - size) // 2
    pil = pil.crop((left, top, left + size, top + size))
    return np.asarray(pil, dtype=np.uint8).transpose(2, 0, 1).copy()


def prepare_image(image: Image.Image, size: int) -> np.ndarray:
    """RGB (:func:`to_rgb8`), then :func:`resize_crop`: uint8 (3, size, size)."""
    return resize_crop(to_rgb8(image), size)
