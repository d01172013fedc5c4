"""Zoo declarations (issue 13): the built-in zoos as declarations, the architectures a declaration
can name (torchvision cut at a layer, the user's own module), user tables, and bad declarations
refused with one line naming the file and the entry, before anything is computed."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from modelgif.zoo import taskonomy
from modelgif.zoo.checkpoint_source import fetch_model_checkpoint
from modelgif.io.download import ChecksumError
from modelgif.score.ground_truth import ground_truth_tables
from modelgif.zoo.tasks import OLD_NAMES, TASKS
from modelgif.zoo.spec import ZooError, load_zoo_spec, read_table
from modelgif.zoo.models import check_zoo_models, load_zoo_encoder, target_is_void

ROOT = Path(__file__).resolve().parents[1]
STAGES = ROOT / "stages"
IMAGENET = "{mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225]}"


def _torchvision_works() -> bool:
    """torchvision is installed (the dev extra): import it the way the library does, so that
    PyPI's CUDA build beside a CPU torch (this machine) loads too (modelgif.zoo.models._torchvision)."""
    if importlib.util.find_spec("torchvision") is None:
        return False
    from modelgif.zoo.models import _torchvision

    _torchvision()  # a build that does not import at all fails here, loudly
    return True


needs_torchvision = pytest.mark.skipif(not _torchvision_works(),
                                       reason="torchvision (the [torchvision] extra) is not installed")


def _sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _resnet_checkpoint(path: Path, seed: int) -> str:
    import torchvision

    torch.manual_seed(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(torchvision.models.resnet18().state_dict(), path)
    return _sha(path)


def _declare(folder: Path, text: str, name: str = "mine") -> Path:
    path = folder / "zoos" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


# ----------------------------------------------------------------------------- the built-in zoos
def test_builtin_zoos_are_declarations_with_the_old_behaviour():
    for zoo in ("taskonomy", "mini", "mini_random"):
        spec = load_zoo_spec(zoo)
        assert list(spec.models) == list(TASKS) and spec.path.resolve() == ROOT / "zoos" / f"{zoo}.yaml"
        assert spec.normalize is None and spec.taskonomy_names
    assert load_zoo_spec("taskonomy").reference == "taskonomy-sample"
    assert load_zoo_spec("mini").reference == load_zoo_spec("mini_random").reference == "mini-scenes"
    assert {m.architecture for m in load_zoo_spec("taskonomy").models.values()} == {"taskonomy"}
    assert {m.architecture for m in load_zoo_spec("mini_random").models.values()} == {"mini"}
    # void targets: exactly Taskonomy's rule (target 6 on the output-GroupNorm encoders), none for the mini zoos
    for task in TASKS:
        for target in (1, 5, 6):
            assert target_is_void("taskonomy", task, target) == (target == 6 and task in taskonomy.NORMALIZED_OUTPUT_TASKS)
            assert not target_is_void("mini", task, target)
    # orientation as the old name rule gave it
    mini = load_zoo_spec("mini").tables
    assert mini["wins_vs_pixels"].higher_is_closer and not mini["losses"].higher_is_closer
    assert all(t.higher_is_closer for t in load_zoo_spec("taskonomy").tables.values())


def test_a_zoo_is_found_by_name_in_the_current_folder_or_by_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = """\
        architecture: mini
        input_size: 64
        reference: mini-scenes
        models: {a: {checkpoint: a.pth, sha256: %s}}
        """ % ("ab" * 32)
    path = _declare(tmp_path, text, "own")
    assert load_zoo_spec("own").path == Path("zoos/own.yaml")
    assert load_zoo_spec(str(path)).models["a"].sha256 == "ab" * 32
    assert load_zoo_spec("mini").path == ROOT / "zoos" / "mini.yaml"  # the project's own, from anywhere
    with pytest.raises(ZooError, match=r"unknown zoo 'nope': no zoos/nope.yaml; known zoos: mini, mini_random, own, taskonomy"):
        load_zoo_spec("nope")
    with pytest.raises(ZooError, match="zoo 'x/none.yaml': no declaration file x/none.yaml"):
        load_zoo_spec("x/none.yaml")


# ----------------------------------------------------------------------------- bad declarations
BASE = """\
architecture: torchvision:resnet18
layer: layer3
input_size: 32
normalize: %s
reference: mini-scenes
""" % IMAGENET


def _models(sha: str, **extra) -> str:
    lines = [f"  {m}: {{checkpoint: a.pt, sha256: {sha}{extra.get(m, '')}}}" for m in ("a", "b")]
    return "models:\n" + "\n".join(lines) + "\n"


@pytest.mark.parametrize("text,entry,message", [
    (BASE.replace("torchvision:resnet18", "resnet18") + _models("ab" * 32), "models.a: architecture",
     "unknown architecture 'resnet18'"),
    (BASE + _models("ab" * 32, b=", input_size: 48"), "models have different input sizes",
     "32: a; 48: b"),
    (BASE + _models("abc"), "models.a: sha256", "64-hex sha256 is needed"),
    (BASE + _models("ab" * 32) + "ground_truth:\n  tables:\n    t: {file: t.csv, higher_is_closer: true}\n",
     "ground_truth.tables.t", "t.csv names 'z', which is not a model of the zoo"),
    (BASE + _models("ab" * 32) + "ground_truth:\n  tables:\n    t: {file: t.csv}\n",
     "ground_truth.tables.t", "higher_is_closer: true (affinities, win rates) or false (losses) is needed"),
    (BASE + _models("ab" * 32) + "ground_truth:\n  tables:\n    t: {file: none.csv, higher_is_closer: true}\n",
     "ground_truth.tables.t: file", "no table file none.csv"),
    (BASE + _models("ab" * 32) + "void_targets: {c: [6]}\n", "void_targets.c", "not a model of the zoo"),
    (BASE + _models("ab" * 32) + "colour: red\n", "unknown key 'colour'", "valid keys"),
    (BASE.replace("reference: mini-scenes\n", "") + _models("ab" * 32), "reference", "a reference source is needed"),
])
def test_bad_declarations_name_the_file_and_the_entry(tmp_path, monkeypatch, text, entry, message):
    monkeypatch.chdir(tmp_path)
    Path("t.csv").write_text("source,target,value\na,a,1\na,z,0.5\n")
    path = _declare(tmp_path, text)
    with pytest.raises(ZooError) as e:
        load_zoo_spec("mine")
    line = str(e.value)
    assert "\n" not in line and line.startswith("zoos/mine.yaml: ") and entry in line and message in line, line
    del path


@needs_torchvision
@pytest.mark.parametrize("change,message", [
    (("torchvision:resnet18", "torchvision:resnet99"), "models.a: unknown architecture torchvision:resnet99: "
                                                         "torchvision has no classification model 'resnet99'"),
    (("layer: layer3", "layer: layer9"), "models.a: unknown layer 'layer9' of torchvision:resnet18; top-level layers: "
                                         "x, conv1, bn1, relu, maxpool, layer1, layer2, layer3, layer4, avgpool, flatten, fc"),
    (("layer: layer3", "layer: flatten"), "models.a: layer 'flatten' of torchvision:resnet18 gives (1, 512), "
                                          "not a (B, C, h, w) map"),
])
def test_bad_layers_and_architectures_are_found_before_any_weights(tmp_path, monkeypatch, change, message):
    monkeypatch.chdir(tmp_path)
    _declare(tmp_path, BASE.replace(*change) + _models("ab" * 32))
    spec = load_zoo_spec("mine")  # reading alone builds nothing
    with pytest.raises(ZooError, match="^zoos/mine.yaml: " + message.replace("(", r"\(").replace(")", r"\)")):
        check_zoo_models(spec)


@pytest.mark.slow  # runs stage scripts as processes
@needs_torchvision
def test_the_fetch_stage_refuses_a_bad_declaration_in_one_line_and_writes_nothing(tmp_path):
    ckpt = tmp_path / "a.pt"
    sha = _resnet_checkpoint(ckpt, 0)
    _declare(tmp_path, BASE.replace("layer: layer3", "layer: flatten") + _models(sha))
    for args in (["a"], ["zz"]):
        r = subprocess.run([sys.executable, str(STAGES / "fetch_checkpoint.py"), *args, "--zoo", "mine",
                            "--out", "out/a.pth"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert not (tmp_path / "out").exists()
        expected = ("zoos/mine.yaml: models.a: layer 'flatten'" if args == ["a"]
                    else "zoos/mine.yaml: unknown task 'zz': not a model of zoo mine")
        assert r.stderr.startswith(f"error: {expected}"), r.stderr
    r = subprocess.run([sys.executable, str(STAGES / "fetch_reference.py"), "--zoo", "mine", "--n-images", "2",
                        "--image-size", "16", "--out", "ref"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and "zoos/mine.yaml: models.a: layer 'flatten'" in r.stderr
    assert not (tmp_path / "ref").exists()


# ----------------------------------------------------------------------------- architectures
@needs_torchvision
def test_torchvision_model_cut_at_its_layer_equals_the_direct_computation(tmp_path, monkeypatch):
    import torchvision

    monkeypatch.chdir(tmp_path)
    sha = _resnet_checkpoint(tmp_path / "a.pt", 3)
    state = torch.load(tmp_path / "a.pt", weights_only=True)  # the same trunk with a 10-class head
    state.update(torchvision.models.resnet18(num_classes=10).fc.state_dict(prefix="fc."))
    torch.save(state, tmp_path / "head10.pt")
    _declare(tmp_path, BASE + _models(sha))
    encoder = load_zoo_encoder("mine", "a", tmp_path / "a.pt", sha256=sha)
    assert not encoder.training and not any(p.requires_grad for p in encoder.parameters())

    net = torchvision.models.resnet18()
    net.load_state_dict(torch.load(tmp_path / "a.pt", weights_only=True))
    net.eval()
    x = torch.rand(2, 3, 32, 32) * 2 - 1  # as stored: [-1, 1]
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    z = ((x + 1) / 2 - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
    with torch.no_grad():
        expected = net.layer3(net.layer2(net.layer1(net.maxpool(net.relu(net.bn1(net.conv1(z)))))))
        got = encoder(x)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
        assert got.shape == (2, 256, 2, 2)
        # a checkpoint with a 10-class head: the head lies beyond the cut and is ignored
        torch.testing.assert_close(load_zoo_encoder("mine", "a", tmp_path / "head10.pt")(x), expected,
                                   rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="expected sha256 " + "ab" * 32):
        load_zoo_encoder("mine", "a", tmp_path / "a.pt", sha256="ab" * 32)
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet34().state_dict(), tmp_path / "r34.pt")
    with pytest.raises(ValueError, match="does not match ResNet: 0 missing keys .*unexpected keys"):
        load_zoo_encoder("mine", "a", tmp_path / "r34.pt")


MODULE = """\
import torch


def build():
    torch.manual_seed(7)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 2, 3, stride=2))


def flat():
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten())
"""


def test_a_module_function_of_the_users_own(tmp_path, monkeypatch):
    """The user's function's module, its weights saved by the fetch (no checkpoint declared),
    loaded back: the same output as the module itself; a non-map output is refused."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "usernets.py").write_text(MODULE)
    _declare(tmp_path, """\
        architecture: usernets:build
        input_size: 16
        reference: mini-scenes
        models: [one, two]
        """)
    spec = check_zoo_models(load_zoo_spec("mine"))
    origin = fetch_model_checkpoint(spec, "one", tmp_path / "ckpt" / "one.pth", {})
    assert origin == "usernets:build() (the weights the function builds)"
    encoder = load_zoo_encoder("mine", "one", tmp_path / "ckpt" / "one.pth")
    import usernets

    x = torch.rand(3, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(encoder(x), usernets.build()(x))  # no normalisation declared: images as stored
    _declare(tmp_path, "architecture: usernets:flat\ninput_size: 16\nreference: mini-scenes\nmodels: [one]\n")
    with pytest.raises(ZooError, match=r"^zoos/mine.yaml: models.one: its output of usernets:flat gives \(1, 784\)"):
        check_zoo_models(load_zoo_spec("mine"))
    _declare(tmp_path, "architecture: usernets:nope\ninput_size: 16\nreference: mini-scenes\nmodels: [one]\n")
    with pytest.raises(ZooError, match="^zoos/mine.yaml: models.one: architecture usernets:nope: usernets has no function 'nope'"):
        check_zoo_models(load_zoo_spec("mine"))


def test_a_declared_checkpoint_url_is_downloaded_and_sha256_checked(tmp_path, monkeypatch, http_server):
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "usernets.py").write_text(MODULE)
    import usernets

    www = tmp_path / "www"
    www.mkdir()
    torch.save({"state_dict": usernets.build().state_dict()}, www / "one.pt")
    base = http_server(www)
    sha = _sha(www / "one.pt")
    for name, digest in (("good", sha), ("bad", "f" * 64)):
        _declare(tmp_path, f"architecture: usernets:build\ninput_size: 16\nreference: mini-scenes\n"
                           f"models: {{one: {{checkpoint: {base}/one.pt, sha256: {digest}}}}}\n", name)
    out = tmp_path / "ckpt" / "one.pth"
    assert fetch_model_checkpoint(load_zoo_spec("good"), "one", out, {}, progress=False) == f"{base}/one.pt"
    assert _sha(out) == sha
    with pytest.raises(ChecksumError):
        fetch_model_checkpoint(load_zoo_spec("bad"), "one", tmp_path / "ckpt2" / "one.pth", {}, retries=1,
                               progress=False)
    assert not (tmp_path / "ckpt2" / "one.pth").exists()


# ----------------------------------------------------------------------------- ground truth
def test_user_tables_csv_and_taskonomy_json_with_orientation_and_replicate(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    names = ["a", "b", "c"]
    t, rep = rng.uniform(size=(3, 3)), rng.uniform(size=(3, 3))
    Path("loss.csv").write_text("source,target,value\n" + "".join(
        f"{s},{u},{float(t[i, j])!r}\n" for i, s in enumerate(names) for j, u in enumerate(names)))
    Path("loss_rep.json").write_text(json.dumps({"table": {f"{s}__{u}": float(rep[i, j]) for i, s in enumerate(names)
                                                           for j, u in enumerate(names)}}))
    _declare(tmp_path, """\
        architecture: usernets:build
        input_size: 16
        reference: mini-scenes
        models: [a, b, c]
        ground_truth:
          tables:
            loss: {file: loss.csv, higher_is_closer: false, replicate: loss_rep.json}
        """)
    assert read_table("loss.csv")[("b", "c")] == t[1, 2]
    (table,) = ground_truth_tables({}, "mine", ["c", "a"])
    np.testing.assert_array_equal(table.matrix, t[np.ix_([2, 0], [2, 0])])
    np.testing.assert_array_equal(table.replicate, rep[np.ix_([2, 0], [2, 0])])
    assert (table.name, table.higher_is_closer, table.replicate_name) == ("loss", False, "loss_rep")
    with pytest.raises(ValueError, match="zoos/mine.yaml: unknown task 'd'"):
        ground_truth_tables({}, "mine", ["a", "d"])
    _declare(tmp_path, "architecture: usernets:build\ninput_size: 16\nreference: mini-scenes\nmodels: [a, b]\n", "bare")
    assert ground_truth_tables({}, "bare", ["a", "b"]) == []  # no ground truth: nothing to correlate
    Path("bad.csv").write_text("from,to,value\na,b,1\n")
    with pytest.raises(ValueError, match="bad.csv: a CSV table needs the header 'source,target,value'"):
        read_table("bad.csv")
    Path("bad.csv").write_text("source,target,value\na,b,high\n")
    with pytest.raises(ValueError, match="bad.csv: a -> b: value 'high' is not a number"):
        read_table("bad.csv")


def test_builtin_tables_read_through_the_declaration_equal_the_taskonomy_loader():
    tasks = ["normal", "reshading", "class_object"]
    (a,) = ground_truth_tables({"ground_truth": ["wins_vs_pixels_16k"]}, "taskonomy", tasks)
    np.testing.assert_array_equal(a.matrix, taskonomy.load_ground_truth("wins_vs_pixels_16k", tasks))
    raw = json.loads((ROOT / "modelgif/data/taskonomy/wins_vs_pixels_16k.json").read_text())["table"]
    assert a.matrix[0, 2] == raw[f"{OLD_NAMES['normal']}__{OLD_NAMES['class_object']}"]


@pytest.mark.slow  # runs stage scripts as processes
def test_correlate_on_a_zoo_without_ground_truth_says_so_and_writes_empty_metrics(tmp_path):
    _declare(tmp_path, "architecture: usernets:build\ninput_size: 16\nreference: mini-scenes\nmodels: [a, b, c]\n")
    from modelgif.score.plots import matrix_csv

    method = tmp_path / "methods" / "modelgif"  # what the distance@modelgif stage writes
    method.mkdir(parents=True)
    matrix_csv(method / "distance.csv", np.array([[0, 1, 2], [1, 0, 3], [2, 3, 0.0]]), ["a", "b", "c"])
    np.save(method / "bootstrap.npy", np.zeros((2, 3, 3)))
    (method / "meta.json").write_text("{}")
    (tmp_path / "params.yaml").write_text("zoo: mine\nmethods: [modelgif]\n")
    r = subprocess.run([sys.executable, str(STAGES / "correlate.py"), "--zoo", "mine", "--params", "params.yaml",
                        "--methods", "methods", "--metrics", "m/correlation.json", "--plots", "plots"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "zoo mine declares no ground truth: nothing to correlate" in r.stdout
    assert json.loads((tmp_path / "m/correlation.json").read_text()) == {}
    assert (tmp_path / "m/per_task_rho.csv").read_text() == "task,table,method,rho\n"
    assert (tmp_path / "plots").is_dir() and not list((tmp_path / "plots").iterdir())


def test_readouts_that_match_fewer_than_two_files_are_refused(tmp_path, monkeypatch):
    """A typo in a table's readouts pattern would silently drop its noise ceiling: refused on reading."""
    monkeypatch.chdir(tmp_path)
    Path("t.csv").write_text("source,target,value\na,a,1\na,b,0.5\nb,a,0.4\nb,b,1\n")
    Path("t_r0.csv").write_text(Path("t.csv").read_text())
    table = "ground_truth:\n  tables:\n    t: {file: t.csv, higher_is_closer: true, readouts: 't_r*.csv'}\n"
    _declare(tmp_path, BASE + _models("ab" * 32) + table)
    with pytest.raises(ZooError, match=r"zoos/mine.yaml: ground_truth.tables.t: readouts: 't_r\*.csv' matches 1 file"):
        load_zoo_spec("mine")
    Path("t_r1.csv").write_text(Path("t.csv").read_text())
    spec = load_zoo_spec("mine")
    assert [f.name for f in spec.tables["t"].readout_files()] == ["t_r0.csv", "t_r1.csv"]
