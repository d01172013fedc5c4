"""Reading a settings file that the ``settings`` stage wrote (``data/settings/<name>.json``).

Kept apart from :mod:`modelgif.settings`, which resolves them from params.yaml: a stage that
only reads its settings file imports this module, so the resolver is not part of that stage's
code fingerprint (``code_<script>.json``), and editing the resolver reruns the ``settings``
stage alone unless a settings file's content changes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import InputError

#: Version of the settings files' layout (a new layout reruns every stage once).
SETTINGS_FORMAT = 1


def read_settings(path: str | os.PathLike) -> dict:
    """A settings file written by the ``settings`` stage; ``InputError`` naming it otherwise."""
    try:
        content = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise InputError(f"cannot read the settings file {path}: {e} (run the settings stage: dvc repro settings)") from e
    if not isinstance(content, dict) or content.get("format") != SETTINGS_FORMAT:
        raise InputError(f"{path} is not a settings file of format {SETTINGS_FORMAT} (rerun: dvc repro settings)")
    return content
