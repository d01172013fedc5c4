"""The reference set: N RGB images every model is probed with (DESIGN §1.1).

A reference set is built once from a *source* and stored as ``images.npy``, uint8
(N, 3, S, S). One module per concept:

- :mod:`.sample`: Taskonomy's public sample building, fetched file by file;
- :mod:`.archives`: a local folder, or a ``.zip`` / ``.tar`` / ``.tar.gz`` archive (also
  from an http(s) URL), read member by member with a size limit;
- :mod:`.images`: decoding to 8-bit RGB (16-bit scaled) and the bilinear resize + crop;
- :mod:`.cutmix`: CutMix of each batch of 8 consecutive images;
- :mod:`.build`: the order of the steps (decode, CutMix at the source resolution, resize),
  the manifest and the ``images_sha256`` check;
- :mod:`.store`: the files on disk, and :func:`load_reference_images`, which maps the
  stored uint8 values v to ``2 * (v / 255) - 1``.
"""

from .archives import IMAGE_SUFFIXES, MAX_MEMBER_BYTES, extract_archive_images, read_archive, read_folder
from .build import (IMAGES_SHA256_OF, ReferenceSet, build_reference_set, check_images_sha256, images_sha256,
                    process_images, rendered_reference_set)
from .cutmix import CutMixBatch, cutmix, cutmix_batch
from .images import decode_image, prepare_image, resize_crop, to_rgb8
from .sample import SAMPLE, SAMPLE_BASE_URL, SAMPLE_COMMIT, fetch_taskonomy_sample, sample_name, sample_url
from .store import contact_sheet, load_reference_images, write_contact_sheet, write_reference_set

__all__ = [
    "IMAGES_SHA256_OF", "IMAGE_SUFFIXES", "MAX_MEMBER_BYTES", "SAMPLE", "SAMPLE_BASE_URL", "SAMPLE_COMMIT",
    "CutMixBatch", "ReferenceSet", "build_reference_set", "check_images_sha256", "contact_sheet", "cutmix",
    "cutmix_batch", "decode_image", "extract_archive_images", "fetch_taskonomy_sample", "images_sha256",
    "load_reference_images", "prepare_image", "process_images", "read_archive", "read_folder",
    "rendered_reference_set", "resize_crop", "sample_name", "sample_url", "to_rgb8", "write_contact_sheet",
    "write_reference_set",
]
