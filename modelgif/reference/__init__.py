"""The reference set: N RGB images every model is probed with (docs/METHOD.md, step 1).

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

from .._lazy import attach

# ``cutmix`` names both a submodule and its function: imported here, so that the package's
# attribute is the function (as it always was), whichever submodule is imported later
from .cutmix import CutMixBatch, cutmix, cutmix_batch

#: Public name → the submodule that defines it, loaded on first use (PEP 562): a stage that
#: reads ``images.npy`` (:mod:`.store`) imports neither the archive readers nor the builder.
_LAZY = {
    "IMAGE_SUFFIXES": "archives", "MAX_MEMBER_BYTES": "archives", "extract_archive_images": "archives",
    "read_archive": "archives", "read_folder": "archives",
    "IMAGES_SHA256_OF": "build", "ReferenceSet": "build", "build_reference_set": "build",
    "check_images_sha256": "build", "images_sha256": "build", "process_images": "build",
    "rendered_reference_set": "build",
    "decode_image": "images", "prepare_image": "images", "resize_crop": "images", "to_rgb8": "images",
    "SAMPLE": "sample", "SAMPLE_BASE_URL": "sample", "SAMPLE_COMMIT": "sample", "fetch_taskonomy_sample": "sample",
    "sample_name": "sample", "sample_url": "sample",
    "contact_sheet": "store", "load_reference_images": "store", "write_contact_sheet": "store",
    "write_reference_set": "store",
}

__all__ = sorted([*_LAZY, "CutMixBatch", "cutmix", "cutmix_batch"])


__getattr__, __dir__ = attach(__name__, _LAZY)
