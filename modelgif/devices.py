"""Which device a computation runs on: one rule for the stages and the library.

``None`` or ``"auto"`` is a CUDA device when torch sees one, else the CPU; anything else is read
by torch (``"cpu"``, ``"cuda"``, ``"cuda:1"``) and checked, so that an unknown device or a CUDA
device asked for where there is none fails at once, with its name, and not deep in a pass.
Code with a numpy path of its own for the CPU (:func:`modelgif.compare.distance.image_distance_sums`)
asks with ``numpy=True`` and gets ``None`` for it.
"""

from __future__ import annotations

from .errors import InputError


def resolve_device(device=None, *, numpy: bool = False):
    """The ``torch.device`` that ``device`` names (``None``/``"auto"``: CUDA if available, else the
    CPU). With ``numpy=True``, ``None`` instead of the CPU where the caller has a numpy path for it
    (``None``, ``"auto"`` and ``"numpy"`` on a machine without CUDA, and ``"numpy"`` always).

    Raises:
        InputError: an unknown device, or a CUDA device where torch sees none.
    """
    if numpy and device == "numpy":
        return None
    import torch  # not every caller needs torch

    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return None if numpy else torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise InputError(f"unknown device {device!r}: {e}") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {device!r} asked for, but CUDA is not available")
    return dev
