"""What the stage commands share: DVC-rendered booleans and one-line errors."""

from __future__ import annotations

import functools

import typer
import yaml

from modelgif.errors import USER_ERRORS, describe


def parse_bool(value: str, name: str = "value") -> bool:
    """``true``/``false`` (also 1/0, yes/no, any case), as DVC renders a boolean param."""
    v = str(value).strip().lower()
    if v not in ("true", "1", "yes", "false", "0", "no"):
        raise typer.BadParameter(f"expected true or false, got {value!r}", param_hint=name)
    return v in ("true", "1", "yes")


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
