"""Tests of the mini-Taskonomy build helpers (modelgif.mini.build) and of the zoo selection
(modelgif.zoo.models): stored scenes, seeds, the transfer tables against direct computation."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

from modelgif.mini import TASK_LABELS, render_scenes
from modelgif.mini import build, zoo
from modelgif.zoo.taskonomy import OLD_NAMES, load_ground_truth, load_table
from modelgif.zoo import models as zoos


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_scenes_round_trip_exactly(tmp_path):
    data = render_scenes(range(3), 32)
    build.save_scenes(tmp_path / "s.npz", data)
    back = build.load_scenes(tmp_path / "s.npz")
    assert back.keys() == data.keys()
    for k in data:
        assert back[k].dtype == data[k].dtype and np.array_equal(back[k], data[k]), k
    with np.load(tmp_path / "s.npz") as f:  # the copies of rgb are not stored twice
        assert "autoencoding" not in f.files and f["segment_semantic"].dtype == np.uint8
    np.savez(tmp_path / "bad.npz", rgb=data["rgb"])
    with pytest.raises(ValueError, match="is not a scenes file: it lacks"):
        build.load_scenes(tmp_path / "bad.npz")


def test_seeds_are_distinct_per_task_and_build():
    enc = {build.encoder_seed(t, s) for t in TASK_LABELS for s in (0, 1)}
    read = {build.readout_seed(t, s) for t in TASK_LABELS for s in (0, 1)}
    assert len(enc) == len(read) == 2 * len(TASK_LABELS) and not enc & read


def test_readout_replicates_have_their_own_seeds_and_replicate_0_is_the_builds_readout():
    """Replicate 0 keeps the seeds the committed build used; replicates 1 … 24 of 3 builds never
    share a seed with each other, with another build's readouts or with any encoder."""
    assert all(build.readout_seed(t, s, 0) == build.readout_seed(t, s) == 1000 * s + 500 + j
               for j, t in enumerate(TASK_LABELS) for s in (0, 1, 2))
    reps = [build.readout_seed(t, s, r) for t in TASK_LABELS for s in (0, 1, 2) for r in range(build.MAX_REPLICATES)]
    enc = {build.encoder_seed(t, s) for t in TASK_LABELS for s in range(4)}
    assert len(set(reps)) == len(reps) and not enc & set(reps)
    with pytest.raises(ValueError, match="readout replicate 25"):
        build.readout_seed("normal", 0, build.MAX_REPLICATES)


def test_replicate_tables_are_the_mean_with_standard_errors(tmp_path):
    rng = np.random.default_rng(1)
    reps = [_rows(rng) for _ in range(3)]
    tables = build.replicate_tables(reps)
    for name, fn in build.TABLES.items():
        mean, se, stack = tables[name]
        direct = np.stack([fn(r) for r in reps])
        np.testing.assert_allclose(stack, direct)
        np.testing.assert_allclose(mean, direct.mean(axis=0))
        i, j = 3, 5
        vals = direct[:, i, j]
        assert se[i, j] == pytest.approx(np.sqrt(((vals - vals.mean()) ** 2).sum() / 2) / np.sqrt(3))
    text = build.table_json("losses", tables["losses"][0], TASK_LABELS, "test", tables["losses"][1], 3)
    (tmp_path / "losses.json").write_text(text)
    record = json.loads(text)
    assert record["replicates"] == 3 and len(record["standard_error"]) == len(record["table"])
    np.testing.assert_allclose(load_ground_truth("losses", TASK_LABELS, tmp_path), tables["losses"][0])
    one = build.replicate_tables(reps[:1])["losses"]
    assert np.isnan(one[1]).all()  # one replicate: no standard error


def _rows(rng, n=6):
    rows = {s: {t: rng.uniform(0, 1, n) for t in TASK_LABELS} for s in [*TASK_LABELS, build.PIXELS]}
    return rows


def test_loss_matrix_and_win_rates_against_a_direct_count():
    rng = np.random.default_rng(0)
    rows = _rows(rng)
    tie = rows["normal"]["curvature"]
    rows[build.PIXELS]["curvature"][:] = tie  # normal ties pixels on every image of curvature
    L, W = build.loss_matrix(rows), build.wins_vs_pixels(rows)
    i, j = TASK_LABELS.index("depth_zbuffer"), TASK_LABELS.index("reshading")
    assert L[i, j] == pytest.approx(sum(rows["depth_zbuffer"]["reshading"]) / 6)
    wins = sum(a < b for a, b in zip(rows["depth_zbuffer"]["reshading"], rows[build.PIXELS]["reshading"]))
    assert W[i, j] == pytest.approx(wins / 6)
    assert W[TASK_LABELS.index("normal"), TASK_LABELS.index("curvature")] == 0.5
    assert L.shape == W.shape == (17, 17) and ((W >= 0) & (W <= 1)).all()
    del rows[build.PIXELS]
    with pytest.raises(KeyError, match="pixels"):
        build.wins_vs_pixels(rows)
    rows = _rows(rng)
    rows["normal"]["normal"][2] = np.nan
    with pytest.raises(ValueError, match="normal → normal has non-finite"):
        build.loss_matrix(rows)


def test_tables_read_back_through_load_ground_truth(tmp_path):
    rng = np.random.default_rng(1)
    m = rng.normal(size=(17, 17))
    (tmp_path / "losses.json").write_text(build.table_json("losses", m, TASK_LABELS, "test"))
    table = json.loads((tmp_path / "losses.json").read_text())
    assert table["name"] == "losses" and table["table"]["rgb2sfnorm__rgb2depth"] == m[10, 8]
    assert OLD_NAMES["normal"] == "rgb2sfnorm" and OLD_NAMES["depth_zbuffer"] == "rgb2depth"
    tasks = ["normal", "autoencoding", "class_object"]
    idx = [TASK_LABELS.index(t) for t in tasks]
    np.testing.assert_array_equal(load_ground_truth("losses", tasks, tmp_path), m[np.ix_(idx, idx)])
    with pytest.raises(ValueError, match="unknown ground-truth table 'wins' in .*valid tables: losses"):
        load_table("wins", tmp_path)
    with pytest.raises(ValueError, match="valid tables: all_affinities"):
        load_table("losses")  # not one of Taskonomy's


def test_manifest_holds_each_file_sha256(tmp_path):
    for i, t in enumerate(TASK_LABELS[:3]):
        (tmp_path / f"{t}.pth").write_bytes(bytes([i]) * (10 + i))
    m = build.write_manifest(tmp_path / "m.json", tmp_path, TASK_LABELS[:3], source="test")
    assert json.loads((tmp_path / "m.json").read_text()) == m
    for i, t in enumerate(TASK_LABELS[:3]):
        assert m["encoders"][t] == {"file": f"{t}.pth", "sha256": hashlib.sha256(bytes([i]) * (10 + i)).hexdigest()}
    with pytest.raises(FileNotFoundError, match="no encoder checkpoint .*edge_texture.pth"):
        build.write_manifest(tmp_path / "m2.json", tmp_path, TASK_LABELS[:6])
    assert not (tmp_path / "m2.json").exists()


def test_transfer_row_is_train_readout_with_the_target_seed():
    train, test = render_scenes(range(8), 32), render_scenes(range(100, 104), 32)
    kw = dict(steps=2, batch_size=4, lr=1e-3)
    row = build.transfer_row(None, train, test, ["reshading", "class_object"], seed=3, progress=False, **kw)
    assert set(row) == {"reshading", "class_object"} and row["reshading"].shape == (4,)
    direct = zoo.train_readout(None, "class_object", train, test, seed=build.readout_seed("class_object", 3),
                               per_image=True, **kw)
    np.testing.assert_array_equal(row["class_object"], direct)


# ----------------------------------------------------------------------------- modelgif.zoo.models
def test_zoo_selection_and_errors():
    assert zoos.ZOOS == ("taskonomy", "mini", "mini_random")
    with pytest.raises(ValueError, match="unknown zoo 'tiny': no zoos/tiny.yaml; known zoos: mini, mini_random, taskonomy"):
        zoos.check_zoo("tiny")
    # each built-in zoo is a declaration: the mini zoos take their checkpoints from params' mini.checkpoints
    from modelgif.zoo.spec import load_zoo_spec

    assert load_zoo_spec("mini").checkpoints == {"manifest": "mini.checkpoints", "torch_hub": False}
    assert load_zoo_spec("mini_random").checkpoints == {"random_init": "mini.checkpoints"}
    assert load_zoo_spec("taskonomy").checkpoints == {"manifest": "checkpoints", "torch_hub": True}
    assert zoos.target_is_void("taskonomy", "room_layout", 6) and not zoos.target_is_void("mini", "room_layout", 6)


def test_random_encoder_is_the_builds_initial_encoder(tmp_path):
    train = render_scenes(range(4), 32)
    for task, seed in (("normal", 0), ("class_object", 1)):
        enc, _, _ = zoo.train_encoder(task, train, steps=0, seed=build.encoder_seed(task, seed), progress=False)
        rnd = zoos.random_encoder(task, seed)
        assert not rnd.training and not any(p.requires_grad for p in rnd.parameters())
        a, b = enc.state_dict(), rnd.state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(zoos.random_encoder("normal").head.weight, zoos.random_encoder("reshading").head.weight)
    zoo.save_encoder(tmp_path / "n.pth", zoos.random_encoder("normal"))
    loaded = zoos.load_zoo_encoder("mini_random", "normal", tmp_path / "n.pth")
    assert torch.equal(loaded.head.weight, zoos.random_encoder("normal").head.weight)
    with pytest.raises(ValueError, match="zoos/mini.yaml: unknown task 'jigsaw': not a model of zoo mini"):
        zoos.load_zoo_encoder("mini", "jigsaw", tmp_path / "n.pth")
    with pytest.raises(ValueError, match="keys|shape|checkpoint"):
        zoos.load_zoo_encoder("taskonomy", "normal", tmp_path / "n.pth")  # a mini file is no Taskonomy encoder


def test_ensure_scenes_reads_or_re_renders_what_the_summary_records(tmp_path):
    summary = build.write_scenes(tmp_path / "scenes", 3, 2, 32, progress=False)
    (tmp_path / "scenes.json").write_text(json.dumps(summary))
    assert summary["sha256"]["train"] == hashlib.sha256((tmp_path / "scenes/train.npz").read_bytes()).hexdigest()
    train, test = build.ensure_scenes(tmp_path / "scenes.json", progress=False)
    direct = render_scenes(range(3, 5), 32)
    assert train["rgb"].shape == (3, 3, 32, 32) and np.array_equal(test["normal"], direct["normal"])
    (tmp_path / "scenes/train.npz").unlink()  # a fresh clone: the cache is gone, rendered again
    again, _ = build.ensure_scenes(tmp_path / "scenes.json", progress=False)
    assert np.array_equal(again["depth_zbuffer"], train["depth_zbuffer"])
    summary["sha256"]["test"] = "0" * 64  # recorded by another renderer
    (tmp_path / "scenes.json").write_text(json.dumps(summary))
    with pytest.raises(ValueError, match="differ from those recorded"):
        build.ensure_scenes(tmp_path / "scenes.json", progress=False)
