"""What the stage commands share: DVC-rendered booleans and one-line errors."""

from __future__ import annotations

import functools

import typer


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


def clean_errors(main):
    """Turn the library's input errors into a one-line message and exit status 1 (no traceback)."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except (ValueError, KeyError, FileNotFoundError, TypeError) as e:
            fail(str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e))

    return wrapper
