"""Model zoos (docs/METHOD.md, "Tasks and models"): what a zoo is and how its models are built.

- :mod:`.spec`: the zoo declaration (``zoos/<name>.yaml``) read into a frozen dataclass;
- :mod:`.models`: the encoders a declaration describes, built or loaded by architecture name;
- :mod:`.checkpoint`: loading a ``{"state_dict": ...}`` checkpoint, every check before use;
- :mod:`.checkpoint_source`: where a model's checkpoint comes from (file, URL, manifest);
- :mod:`.taskonomy`: the Taskonomy zoo (encoders, published transfer tables);
- :mod:`.tasks`: the 17 Taskonomy task names and their original names.

The mini zoo, which the project trains itself, is :mod:`modelgif.mini`.
"""
