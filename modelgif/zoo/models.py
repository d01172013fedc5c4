"""Model zoos the pipeline can measure: the encoders a zoo declaration describes.

``zoo`` in ``params.yaml`` names a declaration, ``zoos/<zoo>.yaml`` (read and checked by
:mod:`modelgif.zoo.spec`). The project's own are

* ``taskonomy``: the 17 pretrained Taskonomy encoders (downloaded, ``data/manifests/
  taskonomy_encoders.json``), the Taskonomy sample building as reference images, the
  published Taskonomy tables (``modelgif/data/taskonomy``) as ground truth;
* ``mini``: the mini-Taskonomy (:mod:`modelgif.mini`): 17 small encoders the project trained
  on rendered rooms, rendered scenes as reference images, the transfer tables it measured;
* ``mini_random``: the control for ``mini``: the same architecture with the initial (random)
  weights of the ``mini`` build's encoders; same references and ground truth.

A model's architecture is one of (:func:`build_architecture`):

* ``taskonomy``: visualpriors' ``TaskonomyEncoder`` configured for the model's name (a task);
* ``mini``: :class:`modelgif.mini.encoder.MiniEncoder`;
* ``torchvision:<name>``: any classification model of ``torchvision.models`` (built without
  weights, never downloaded), cut at the declared ``layer`` by
  ``torchvision.models.feature_extraction.create_feature_extractor``; needs the optional
  extra ``modelgif[torchvision]``;
* ``package.module:function``: the ``nn.Module`` the user's function returns (imported with the
  current directory on ``sys.path``), cut at ``layer`` if one is declared.

Weights come from a local file or an http(s) URL with its sha256 (:mod:`modelgif.zoo.checkpoint_source`)
and are loaded with ``torch.load(..., weights_only=True)``: a plain state dict or
``{"state_dict": ...}``.

The two built-in architectures are modules loaded by name (:data:`ARCHITECTURES`), never
imported by this module's code: a zoo's own code is then no dependency of another zoo's stages.
Instead the ``settings`` stage writes :func:`modelgif.settings.zoo_code`, the sha256 of every file the zoo's
architecture module reaches, to ``data/settings/zoo.json``, on which every stage that builds a
model depends: editing the mini zoo's encoder reruns the mini zoo's fields, and no Taskonomy
field; editing the mini trainer (:mod:`modelgif.mini.zoo`) reruns no field at all.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .._resources import mini_tables_dir, taskonomy_tables_dir
from .spec import NAMED_ARCHITECTURES, ModelSpec, ZooError, ZooSpec, load_zoo_spec

if TYPE_CHECKING:  # torch only where an encoder is built: the correlate stage does not need it
    import torch

#: The project's own zoos (``zoos/<name>.yaml``).
ZOOS = ("taskonomy", "mini", "mini_random")
#: The built-in architectures: name → the module that defines it, loaded by name. Each module
#: has ``build_zoo_model(name) -> nn.Module`` (fresh weights, eval mode) and
#: ``load_zoo_model(name, path, *, sha256, map_location)``; one that makes a zoo of untrained
#: models also ``write_random_checkpoint(name, seed, out)`` (a ``random_init`` checkpoint source).
ARCHITECTURES = NAMED_ARCHITECTURES
#: Where the mini-Taskonomy's ground-truth tables are (``losses``, ``wins_vs_pixels``).
MINI_TABLES_DIR = mini_tables_dir()  # data/mini/tables (a wheel: its copy in the package)


def architecture_module(architecture: str):
    """The module of a built-in architecture (:data:`ARCHITECTURES`), imported by name."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"{architecture!r} is not a built-in architecture ({', '.join(ARCHITECTURES)})")
    return importlib.import_module(ARCHITECTURES[architecture])


def check_zoo(zoo: str) -> str:
    """Return ``zoo`` if its declaration reads and checks (:func:`modelgif.zoo.spec.load_zoo_spec`),
    else raise ``ValueError`` naming the file and the entry."""
    load_zoo_spec(zoo)
    return zoo


def ground_truth_dir(zoo: str) -> Path:
    """Folder of a built-in zoo's ground-truth tables (for tools that read them by name; the
    pipeline reads the tables a declaration lists, :mod:`modelgif.score.ground_truth`)."""
    if zoo not in ZOOS:
        raise ValueError(f"ground_truth_dir knows the built-in zoos only ({', '.join(ZOOS)}), not {zoo!r}")
    return MINI_TABLES_DIR if zoo != "taskonomy" else taskonomy_tables_dir()


#: Keeps the stand-in torchvision op schemas alive (:func:`_declare_torchvision_ops`).
_TORCHVISION_OPS = []


def _declare_torchvision_ops() -> None:
    """Declare the schemas of torchvision's two compiled ops that its import registers Python
    kernels for (``torchvision::nms``, ``torchvision::qnms``).

    Needed where torchvision's compiled extension does not load beside this torch: PyPI's
    torchvision wheel is a CUDA build, and beside torch's CPU build its ``_C`` fails to load,
    after which ``import torchvision`` stops with "operator torchvision::nms does not exist".
    The models and ``create_feature_extractor`` are pure Python and do not use these ops; with
    the schemas declared (no kernels) they import and run, and calling ``nms`` fails loudly.
    """
    import torch

    lib = torch.library.Library("torchvision", "DEF")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor qdets, Tensor scores, float iou_threshold) -> Tensor")
    _TORCHVISION_OPS.append(lib)


def _torchvision():
    """``(torchvision, torchvision.models.feature_extraction)``, or a one-line ``ValueError``."""
    import sys

    try:
        try:
            import torchvision
        except RuntimeError as e:
            if "torchvision::nms does not exist" not in str(e) or _TORCHVISION_OPS:
                raise
            for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
                del sys.modules[name]  # the failed import's half-initialised modules
            _declare_torchvision_ops()
            import torchvision  # silently: the models and the feature extraction work as they are
        from torchvision.models import feature_extraction
    except ImportError as e:
        raise ValueError("architecture torchvision:<name> and a declared layer need torchvision, an optional extra: "
                         "pip install 'modelgif[torchvision]' (`make install` includes it)") from e
    except Exception as e:  # noqa: BLE001 - e.g. a build for another torch fails while registering its ops
        raise ValueError(f"torchvision is installed but does not import ({type(e).__name__}: {e}); it must be the "
                         "build made for this torch (Makefile: TORCHVISION_VERSION from torch's wheel index)") from e
    return torchvision, feature_extraction


def import_torchvision():
    """``torchvision``, imported as the zoos import it: where its compiled ops do not load beside
    this torch (PyPI's CUDA wheel beside torch's CPU build), with their schemas declared so that
    its models and feature extraction, which are pure Python, work (:func:`_declare_torchvision_ops`).
    ``ValueError`` where it is missing or does not import at all."""
    return _torchvision()[0]


def _exited(e: SystemExit, architecture: str, doing: str) -> ValueError:
    """A user's module that calls ``sys.exit`` is an error (never a silent success of the stage)."""
    return ValueError(f"architecture {architecture} raised SystemExit({e.code!r}) while {doing}: a model's module "
                      "must build and run the model, never exit the process")


def _user_function(architecture: str):
    module_name, _, function = architecture.partition(":")
    if os.getcwd() not in sys.path:  # the project root, where DVC runs the stages
        sys.path.append(os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"architecture {architecture}: cannot import {module_name}: {e}") from e
    except SystemExit as e:
        raise _exited(e, architecture, f"importing {module_name}") from None
    fn = getattr(module, function, None)
    if not callable(fn):
        raise ValueError(f"architecture {architecture}: {module_name} has no function {function!r}")
    return fn


def build_architecture(model: ModelSpec) -> torch.nn.Module:
    """``model``'s architecture with fresh (untrained) weights, before any cut: eval mode.

    Raises:
        ValueError: an unknown torchvision model, torchvision missing, a user function that
            cannot be imported, exits (``SystemExit``, whatever its code) or does not return an
            ``nn.Module``.
    """
    import torch

    arch = model.architecture
    if arch in ARCHITECTURES:
        return architecture_module(arch).build_zoo_model(model.name).eval()
    if arch.startswith("torchvision:"):
        torchvision, _ = _torchvision()
        name = arch.split(":", 1)[1]
        known = torchvision.models.list_models(module=torchvision.models)
        if name not in known:
            raise ValueError(f"unknown architecture {arch}: torchvision has no classification model {name!r}")
        net = torchvision.models.get_model(name, weights=None)
    else:
        fn = _user_function(arch)
        try:
            net = fn()
        except SystemExit as e:
            raise _exited(e, arch, f"building model {model.name}") from None
        if not isinstance(net, torch.nn.Module):
            raise ValueError(f"architecture {arch} returned {type(net).__name__}, not a torch.nn.Module")
    return net.eval()


def _encoder_class():
    import torch

    class ZooEncoder(torch.nn.Module):
        """A zoo's model as the field sees it: images as stored (in [-1, 1]) -> normalised as
        declared -> the module -> the declared layer's (B, C, h, w) map."""

        def __init__(self, body: torch.nn.Module, normalize, node: str | None):
            super().__init__()
            self.body, self.node = body, node
            mean, std = normalize or ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
            self.normalized = normalize is not None
            self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if self.normalized:
                x = ((x + 1) / 2 - self.mean.to(x.dtype)) / self.std.to(x.dtype)
            out = self.body(x)
            return out[self.node] if self.node is not None else out

    return ZooEncoder


def _cut(net: torch.nn.Module, model: ModelSpec) -> tuple[torch.nn.Module, str | None]:
    """``net`` cut at ``model.layer`` (a feature extractor returning ``{layer: map}``), or as is."""
    if model.layer is None:
        return net, None
    _, fx = _torchvision()
    try:
        nodes = fx.get_graph_node_names(net)[1]
    except Exception as e:  # noqa: BLE001 - torch.fx cannot trace every module
        raise ValueError(f"architecture {model.architecture}: cannot be traced to find layer {model.layer!r}: {e}") from e
    if model.layer not in nodes and not any(n.startswith(model.layer + ".") for n in nodes):  # a node or a module
        tops = list(dict.fromkeys(n.split(".")[0] for n in nodes))
        raise ValueError(f"unknown layer {model.layer!r} of {model.architecture}; top-level layers: "
                         f"{', '.join(tops[:20])}{', ...' if len(tops) > 20 else ''}")
    return fx.create_feature_extractor(net, return_nodes={model.layer: model.layer}), model.layer


def _load_weights(net: torch.nn.Module, path, sha256: str | None, what: str, full: torch.nn.Module | None = None) -> None:
    """Load the weights at ``path`` (a state dict, or one under ``"state_dict"``) into ``net``.
    ``full``: the uncut architecture ``net`` was cut from; keys of its parts beyond the cut (a
    classifier head, of any number of classes) are ignored."""
    import torch

    from .checkpoint import load_weights_only
    from ..io.download import sha256_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no {what} at {path}")
    if sha256 is not None and sha256_file(path) != sha256.lower():
        raise ValueError(f"{what} {path}: expected sha256 {sha256.lower()}, got {sha256_file(path)}")
    ckpt = load_weights_only(path, what)
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{what} {path} holds no state dict (a mapping name -> tensor, or one under 'state_dict')")
    expected = net.state_dict()
    beyond = set(full.state_dict()) - set(expected) if full is not None else set()
    state = {k: v for k, v in state.items() if k not in beyond}
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(f"{what} {path} does not match {type(full or net).__name__}: {len(missing)} missing keys "
                         f"{missing[:3]}, {len(unexpected)} unexpected keys {unexpected[:3]}")
    bad = [k for k, v in state.items() if tuple(v.shape) != tuple(expected[k].shape)]
    if bad:
        raise ValueError(f"{what} {path}: {bad[0]} has shape {tuple(state[bad[0]].shape)}, "
                         f"expected {tuple(expected[bad[0]].shape)}")
    net.load_state_dict(state)


def _freeze(model: torch.nn.Module, map_location) -> torch.nn.Module:
    for p in model.parameters():
        p.requires_grad_(False)
    return model.to(map_location).eval()


def encoder_from_spec(spec: ZooSpec, task: str, path: str | os.PathLike | None = None, *,
                      sha256: str | None = None, map_location: str | torch.device = "cpu") -> torch.nn.Module:
    """Model ``task`` of the zoo ``spec``, with the weights at ``path`` (None: fresh weights):
    frozen, eval mode; its forward maps images as stored (B, 3, H, W) in [-1, 1] to the declared
    layer's (B, C, h, w) map."""
    model = spec.model(task)
    if model.architecture in ARCHITECTURES and path is not None:
        return architecture_module(model.architecture).load_zoo_model(task, path, sha256=sha256,
                                                                      map_location=map_location)
    net = build_architecture(model)
    body, node = _cut(net, model)
    if path is not None:
        _load_weights(body, path, sha256, f"checkpoint of {task} ({model.architecture})", net if node else None)
    encoder = body if node is None and spec.normalize is None else _encoder_class()(body, spec.normalize, node)
    if _is_user_function(model.architecture):
        encoder = _exit_guard_class()(encoder, model.architecture, model.name)
    return _freeze(encoder, map_location)


def _is_user_function(architecture: str) -> bool:
    return architecture not in ARCHITECTURES and not architecture.startswith("torchvision:")


def _exit_guard_class():
    import torch

    class UserModel(torch.nn.Module):
        """A user's ``module:function`` model whose forward may not end the process: a
        ``SystemExit`` inside it (``sys.exit(0)`` would end a stage silently, as a success)
        becomes a ``ValueError`` naming the architecture."""

        def __init__(self, body: torch.nn.Module, architecture: str, name: str):
            super().__init__()
            self.body, self.architecture, self.name = body, architecture, name

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            try:
                return self.body(x)
            except SystemExit as e:
                raise _exited(e, self.architecture, f"running model {self.name}") from None

    return UserModel


def load_zoo_encoder(zoo: str, task: str, path: str | os.PathLike, *, sha256: str | None = None,
                     map_location: str | torch.device = "cpu") -> torch.nn.Module:
    """Load ``task``'s encoder of ``zoo`` from a checkpoint, checked (eval mode, frozen): its
    forward maps reference images (B, 3, H, W) as stored (``data/reference/images.npy``, read in
    [-1, 1]) to the declared layer's (B, C, h, w) map, normalisation inside."""
    return encoder_from_spec(load_zoo_spec(zoo), task, path, sha256=sha256, map_location=map_location)


def _check_batch(encoder, model: ModelSpec, where: str, size: int) -> None:
    """``encoder`` maps a batch of two different images, which require grad, to two maps that
    depend on them through autograd (the field is made of input gradients, computed for many
    images in one pass)."""
    import torch

    x = torch.stack([torch.zeros(3, size, size), torch.full((3, size, size), 0.5)]).requires_grad_(True)
    try:
        out = encoder(x)
    except SystemExit as e:
        raise ZooError(f"{where}: {_exited(e, model.architecture, f'running model {model.name}')}") from None
    except Exception as e:  # noqa: BLE001 - a user's module failing on a batch is bad input
        raise ZooError(f"{where}: {model.architecture} cannot take a batch of more than one image: on a (2, 3, "
                       f"{size}, {size}) input it fails with {type(e).__name__}: {' '.join(str(e).split())}") from None
    if not isinstance(out, torch.Tensor) or out.dim() != 4 or out.shape[0] != 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ZooError(f"{where}: {model.architecture} cannot take a batch of more than one image: a (2, 3, {size}, "
                       f"{size}) input gives {shape}, not 2 maps (B = 2, C, h, w)")
    if not out.requires_grad or out.grad_fn is None:
        raise ZooError(f"{where}: {model.architecture} returns a tensor detached from its input (no grad_fn for an "
                       "input that requires grad): the field needs the gradient of the output with respect to the "
                       "image; do not detach, convert to numpy or use torch.no_grad() inside the model")


def check_zoo_models(spec: ZooSpec) -> ZooSpec:
    """The checks that need the models built, before anything is computed: each distinct
    (architecture, layer) of ``spec`` is built with fresh weights and run on one blank image of
    the declared input size; its output must be one (B, C, h, w) tensor. It is then run on a
    batch of two images that require grad: its output must hold two maps and depend on the
    input through autograd (not detached).

    Raises:
        ZooError: one line naming the declaration file and the model (an unknown architecture
            or layer, an output that is not a 4-D map, a model that exits, cannot take a batch
            of more than one image, or returns a tensor detached from its input, ...).
    """
    import torch

    seen = set()
    for model in spec.models.values():
        key = (model.architecture, model.layer)
        if key in seen or model.architecture in ARCHITECTURES:  # fixed, known 4-D outputs
            continue
        seen.add(key)
        where = f"{spec.path}: models.{model.name}"
        try:
            encoder = encoder_from_spec(spec, model.name)
            with torch.no_grad():
                out = encoder(torch.zeros(1, 3, spec.input_size, spec.input_size))
        except ZooError:
            raise
        except (ValueError, OSError) as e:
            raise ZooError(f"{where}: {e}") from e
        except SystemExit as e:
            raise ZooError(f"{where}: {_exited(e, model.architecture, f'running model {model.name}')}") from None
        except Exception as e:  # noqa: BLE001 - a user's module failing on a blank image is bad input
            raise ZooError(f"{where}: {model.architecture} fails on a (1, 3, {spec.input_size}, {spec.input_size}) "
                           f"input: {type(e).__name__}: {e}") from e
        if not isinstance(out, torch.Tensor) or out.dim() != 4:
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            at = f"layer {model.layer!r}" if model.layer else "its output"
            raise ZooError(f"{where}: {at} of {model.architecture} gives {shape}, not a (B, C, h, w) map; "
                           "declare a convolutional layer")
        _check_batch(encoder, model, where, spec.input_size)
    return spec


def target_is_void(zoo: str, task: str, target: int) -> bool:
    """True where ``target`` makes the field identically zero for ``task``'s encoder of ``zoo``
    (the declaration's ``void_targets``: Taskonomy's output-GroupNorm encoders for target 6)."""
    spec = load_zoo_spec(zoo)
    spec.model(task)
    return int(target) in spec.void_targets.get(task, frozenset())


def random_encoder(task: str, seed: int = 0) -> torch.nn.Module:
    """``mini_random``'s encoder for ``task``: the mini zoo's untrained encoder with exactly the
    initial weights that encoder of a ``mini`` build with ``seed`` started from
    (:func:`modelgif.mini.encoder.random_encoder`); eval mode, frozen."""
    return architecture_module("mini").random_encoder(task, seed)


__all__ = ["ARCHITECTURES", "MINI_TABLES_DIR", "ZOOS", "architecture_module", "build_architecture", "check_zoo", "check_zoo_models", "encoder_from_spec", "import_torchvision",
           "ground_truth_dir", "load_zoo_encoder", "random_encoder", "target_is_void"]
