import hashlib
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from modelgif.zoo import taskonomy as tk

ROOT = Path(__file__).resolve().parents[1]
#: Where the Taskonomy authors' published pickles may be (the JSON tables are converted from
#: them): in the repository's shared/ folder, or in ../shared beside the checkout.
PUBLISHED = [ROOT / "shared" / "taskonomy-results", ROOT.parent / "shared" / "taskonomy-results"]


def published_tables(candidates=PUBLISHED, environ=os.environ) -> Path | None:
    """The first folder of ``candidates`` holding the published pickles; None where there is
    none, except under CI (``CI=true``), where that fails the test instead of skipping it."""
    found = next((c for c in candidates if (c / "affinities").is_dir() and (c / "winrates").is_dir()), None)
    if found is None and environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail(f"CI: the published Taskonomy tables are in none of {[str(c) for c in candidates]}")
    return found


def test_tasks_and_names():
    assert len(tk.TASKS) == 17 and len(set(tk.TASKS)) == 17
    assert set(tk.TASKS) == set(tk.OLD_NAMES)
    assert tk.TASKS[0] == "autoencoding" and tk.TASKS[-1] == "class_object"
    assert tk.OLD_NAMES["vanishing_point"] == "vanishing_point_well_defined"


def test_checkpoint_names_carry_their_sha256():
    name = tk.encoder_filename("normal")
    assert name == "normal_encoder-f5e2c7737e4948e3b2a822f584892c342eaabbe66661576ba50db7cdd40561c5.pth"
    assert tk.encoder_sha256("normal") == name[len("normal_encoder-") : -4]
    manifest = tk.official_manifest()
    assert len(manifest) == 17 and all(len(v["sha256"]) == 64 for v in manifest.values())


def test_normalize_outputs_rule():
    assert tk.build_encoder("room_layout").normalize_outputs is True
    assert tk.build_encoder("vanishing_point").normalize_outputs is True
    assert tk.build_encoder("normal").normalize_outputs is False


def _save_checkpoint(path, seed=0):
    torch.manual_seed(seed)
    model = tk.build_encoder("normal")
    for p in model.parameters():
        p.data.normal_(0, 0.05)
    torch.save({"state_dict": model.state_dict()}, path)
    return model, hashlib.sha256(path.read_bytes()).hexdigest()


def test_load_encoder_round_trip(tmp_path):
    original, sha = _save_checkpoint(tmp_path / "ckpt.pth")
    loaded = tk.load_encoder("normal", tmp_path / "ckpt.pth", sha256=sha)
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(loaded(x), original.eval()(x))
        assert not torch.equal(loaded(x), tk.build_encoder("normal")(x))  # weights really loaded


def test_load_encoder_refuses_bad_checkpoints(tmp_path):
    _, sha = _save_checkpoint(tmp_path / "ckpt.pth")
    with pytest.raises(ValueError, match=f"expected sha256 {'0' * 64}, got {sha}"):
        tk.load_encoder("normal", tmp_path / "ckpt.pth", sha256="0" * 64)
    state = tk.build_encoder("normal").state_dict()
    state.pop("conv1.weight")
    state["extra.weight"] = torch.zeros(1)
    torch.save({"state_dict": state}, tmp_path / "keys.pth")
    with pytest.raises(ValueError, match=r"1 missing keys \['conv1.weight'\], 1 unexpected keys \['extra.weight'\]"):
        tk.load_encoder("normal", tmp_path / "keys.pth")
    state = tk.build_encoder("normal").state_dict()
    state["compress1.weight"] = torch.zeros(4, 2048, 3, 3)
    torch.save({"state_dict": state}, tmp_path / "shape.pth")
    with pytest.raises(ValueError, match=r"compress1.weight has shape \(4, 2048, 3, 3\)"):
        tk.load_encoder("normal", tmp_path / "shape.pth")
    torch.save(tk.build_encoder("normal").state_dict(), tmp_path / "bare.pth")
    with pytest.raises(ValueError, match="no 'state_dict' entry"):
        tk.load_encoder("normal", tmp_path / "bare.pth")
    (tmp_path / "junk.pth").write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match="not a readable weights-only torch file"):
        tk.load_encoder("normal", tmp_path / "junk.pth")
    with pytest.raises(FileNotFoundError):
        tk.load_encoder("normal", tmp_path / "missing.pth")
    with pytest.raises(ValueError, match="unknown task 'colour'; valid tasks: autoencoding"):
        tk.load_encoder("colour", tmp_path / "ckpt.pth")


def test_arbitrary_code_in_a_checkpoint_is_not_run(tmp_path):
    class Evil:
        def __reduce__(self):
            return (Path.touch, (tmp_path / "pwned",))

    torch.save({"state_dict": Evil()}, tmp_path / "evil.pth", _use_new_zipfile_serialization=True)
    with pytest.raises(ValueError, match=r"^refused to unpickle getattr from .*evil\.pth: checkpoints load with "
                                         r"weights_only=True"):  # Path.touch pickles as getattr(Path, "touch")
        tk.load_encoder("normal", tmp_path / "evil.pth")
    assert not (tmp_path / "pwned").exists()


def test_ground_truth_known_values():
    t = tk.load_ground_truth("all_affinities", ["autoencoding", "depth_zbuffer", "depth_euclidean"])
    assert t[0, 0] == 0.004109611677404509  # autoencoder__autoencoder
    assert t[1, 2] == 0.04976717581413764  # rgb2depth__rgb2mist
    w = tk.load_ground_truth("wins_vs_pixels_16k", ["depth_zbuffer", "depth_euclidean"])
    assert w[0, 1] == 0.883671352846278
    assert tk.load_ground_truth("all_affinities").shape == (17, 17)


def test_the_published_tables_are_found_or_ci_fails(tmp_path):
    (tmp_path / "a" / "affinities").mkdir(parents=True)
    (tmp_path / "b" / "affinities").mkdir(parents=True)
    (tmp_path / "b" / "winrates").mkdir()
    assert published_tables([tmp_path / "a", tmp_path / "b"], {}) == tmp_path / "b"
    assert published_tables([tmp_path / "a"], {"CI": "false"}) is None
    with pytest.raises(pytest.fail.Exception, match="CI: the published Taskonomy tables are in none of"):
        published_tables([tmp_path / "a"], {"CI": "true"})


@pytest.mark.parametrize("name", tk.GROUND_TRUTH_TABLES)
def test_converted_tables_equal_the_published_pickles(name):
    shared = published_tables()
    if shared is None:
        pytest.skip(f"the published Taskonomy pickles are in none of {[str(c) for c in PUBLISHED]} (CI fails here)")
    kind = "affinities" if name.startswith("all_") else "winrates"
    with open(shared / kind / f"{name}.pkl", "rb") as f:
        published = pickle.load(f)
    assert tk.load_table(name) == {k: float(v) for k, v in published.items()}
    t = tk.load_ground_truth(name)
    old = [tk.OLD_NAMES[x] for x in tk.TASKS]
    assert np.array_equal(t, [[published[f"{a}__{b}"] for b in old] for a in old])


def test_ground_truth_errors(tmp_path):
    with pytest.raises(ValueError, match="valid tables: all_affinities"):
        tk.load_ground_truth("affinities", tk.TASKS)
    with pytest.raises(ValueError, match="unknown task 'pixels'"):
        tk.load_ground_truth("all_affinities", ["normal", "pixels"])
    (tmp_path / "all_affinities.json").write_text(json.dumps({"table": {"rgb2sfnorm__rgb2sfnorm": 1.0}}))
    with pytest.raises(KeyError, match="no entry 'rgb2sfnorm__reshade'"):
        tk.load_ground_truth("all_affinities", ["normal", "reshading"], root=tmp_path)


def test_the_task_list_is_defined_once_and_params_yaml_follows_it():
    import yaml

    from modelgif.zoo import tasks
    from modelgif.mini import scenes

    assert tk.TASKS is tasks.TASKS and tk.OLD_NAMES is tasks.OLD_NAMES
    # the mini renderer keeps its own copy: editing modelgif/mini/scenes.py would invalidate the
    # mini build's dvc.lock (its render stage depends on the file), so it is held equal here
    assert scenes.TASK_LABELS == tasks.TASKS
    assert len(tasks.TASKS) == 17 and tuple(tasks.OLD_NAMES) == tasks.TASKS
    repo = Path(__file__).resolve().parent.parent
    params = yaml.safe_load((repo / "params.yaml").read_text())
    assert tuple(params["models"]) == tasks.TASKS  # DVC's foreach cannot import Python: checked here
