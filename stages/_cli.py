"""What the stage commands share: DVC-rendered booleans, the model list, the device, the
reference set's size before it is read, one-line errors."""

from __future__ import annotations

import functools
from pathlib import Path

import typer
import yaml

from modelgif.errors import USER_ERRORS, check_memory, check_models, describe


def parse_bool(value: str, name: str = "value") -> bool:
    """``true``/``false`` (also 1/0, yes/no, any case), as DVC renders a boolean param."""
    v = str(value).strip().lower()
    if v not in ("true", "1", "yes", "false", "0", "no"):
        raise typer.BadParameter(f"expected true or false, got {value!r}", param_hint=name)
    return v in ("true", "1", "yes")


def read_models(params: Path) -> list[str]:
    """The ``models`` list of a params file (:func:`modelgif.errors.check_models`)."""
    return check_models(yaml.safe_load(Path(params).read_text()) or {}, str(params))


def resolve_device(device: str):
    """:func:`modelgif.devices.resolve_device` for a command-line option: its error is the
    option's (``typer.BadParameter``, a usage error)."""
    from modelgif.devices import resolve_device as resolve
    from modelgif.errors import InputError

    try:
        return resolve(device)
    except InputError as e:
        raise typer.BadParameter(str(e)) from e


#: Bytes of host memory per reference pixel value while a stage holds the set: the uint8 array
#: read, its float32 copy in [-1, 1] and (field stage) the float32 baselines.
READ_BYTES_PER_VALUE = 1 + 4


def check_reference_memory(shape, nbytes: int, what: str, device=None) -> None:
    """Refuse, before any work, a reference set whose arrays (``nbytes`` in all, on ``device``;
    None: the host) do not fit in the memory available, naming its size and the params to lower.
    ``what``: what the stage holds, e.g. ``"and their baselines as float32 (the field stage)"``."""
    n, _, h, w = shape
    check_memory(nbytes, f"holding {n} reference images of 3×{h}×{w} {what}",
                 "lower reference.n_images or reference.image_size", device=device)


def fail(message: str) -> None:
    """Print ``error: message`` on stderr and exit with status 1."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def clean_errors(main=None, *, outputs: tuple[str, ...] = ()):
    """Turn bad input and file-system refusals into a one-line ``error:`` and exit status 1.

    Catches exactly :data:`modelgif.errors.USER_ERRORS` (``ValueError``, ``OSError``), worded by
    :func:`modelgif.errors.describe` (the path and the problem), and ``yaml.YAMLError`` (a bad
    params file). ``outputs`` names the options holding the command's outputs, named when the
    system reports no path (a write on a full disk). Anything else (``TypeError``, …) is a
    programming error and keeps its traceback. Use as ``@clean_errors`` or
    ``@clean_errors(outputs=("out",))``.
    """
    if main is None:
        return functools.partial(clean_errors, outputs=outputs)

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except USER_ERRORS as e:
            fail(describe(e, [kwargs[o] for o in outputs if kwargs.get(o) is not None]))
        except yaml.YAMLError as e:  # a params file the stage reads
            fail("invalid YAML: " + " ".join(str(e).split()))

    return wrapper
