"""modelgif.compare.registry: a method is one module plus one registration, and everything else follows."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from modelgif.compare import registry
from modelgif.compare.resample import resample_indices
from modelgif.compare import methods
from modelgif.compare.methods import check_method, method_distances
from modelgif.compare.registry import METHODS, REGISTRY, Method, get_method, register
from modelgif.settings import method_input_paths, method_settings
from modelgif.compare.similarity import DDS_KERNELS, DDS_RDMS, FEATURE_NORMS, cka_distance

#: A new method, as a user would write it: its module (linear CKA computed directly, per resample).
MODULE = '''
import numpy as np

def mean_cka(inputs, indices, *, options, feature_shapes, device, progress):
    from modelgif.compare.similarity import cka_distance
    full = cka_distance(inputs, debiased=options["debiased"])
    samples = np.stack([cka_distance([x[i] for x in inputs], debiased=options["debiased"]) for i in indices])
    return full, samples
'''


@pytest.fixture
def new_method(tmp_path, monkeypatch):
    """``mycka`` registered from a module under the current folder, taken out again afterwards."""
    (tmp_path / "my_methods.py").write_text(MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = register(Method("mycka", "set", "features", {"debiased": False}, compute="my_methods:mean_cka",
                           summary="linear CKA, the user's own code"))
    yield spec
    REGISTRY.pop("mycka")
    sys.modules.pop("my_methods", None)


def test_a_registered_method_is_computed_checked_wired_and_fingerprinted(new_method, tmp_path):
    rng = np.random.default_rng(0)
    feats = [rng.normal(size=(12, 5)) for _ in range(4)]
    idx = resample_indices(12, 6, seed=1)
    got = method_distances("mycka", feats, idx, options={"debiased": True})
    # oracle: the library's CKA on the full set and on each resample's rows, computed here
    assert np.array_equal(got.distance, cka_distance(feats, debiased=True))
    assert np.array_equal(got.samples[3], cka_distance([x[idx[3]] for x in feats], debiased=True))
    # options: defaults, types and unknown names from the registration
    assert check_method("mycka") == {"debiased": False} and methods.DEFAULT_OPTIONS["mycka"] == {"debiased": False}  # read on use
    with pytest.raises(ValueError, match="option debiased must be true or false"):
        check_method("mycka", {"debiased": "yes"})
    with pytest.raises(ValueError, match=r"has no option\(s\) kernel; its options: debiased"):
        check_method("mycka", {"kernel": "rbf"})
    # the stage wiring: its inputs are the encoder outputs; its settings carry its code's sha256
    assert [p.as_posix() for p in method_input_paths("mycka", ["a"])] == ["data/features/a.npy", "data/features/a.json"]
    params = {"models": ["a", "b"], "bootstrap": {"n": 6, "seed": 1}, "distance": "cosine"}
    before = method_settings(params, "mycka")
    assert set(before["code"]) == {"my_methods.py"} and before["metric"] is None
    (tmp_path / "my_methods.py").write_text(MODULE + "\n# edited\n")
    assert method_settings(params, "mycka")["code"] != before["code"]  # editing it reruns distance@mycka


def test_registrations_are_checked():
    with pytest.raises(ValueError, match="already registered"):
        register(Method("cka", "set", "features"))
    with pytest.raises(ValueError, match="a set method reads features"):
        Method("x", "set", "fields")
    with pytest.raises(ValueError, match="kind must be 'field', 'set' or 'estimator'"):
        Method("x", "pairs", "features")
    with pytest.raises(ValueError, match="compute must be 'module:function'"):
        Method("x", "set", "features", compute="nocolon")
    with pytest.raises(ValueError, match="unknown method 'nope'; valid methods: modelgif, ig"):
        get_method("nope")
    # every registered method is a built-in one, or the candidate under its pre-registered test
    assert "nope" not in REGISTRY and METHODS + ("field_cka",) == tuple(REGISTRY)


def test_the_built_in_registrations_match_the_code_they_name():
    """The DDS choices are the similarity module's kernels and normalisations; the kinds are those
    the bootstrap knows; a built-in field or set method has no ``compute`` (modelgif.compare.methods
    computes it); an estimator's ``compute`` is its function in modelgif.compare.estimator_distances."""
    dds = get_method("dds")
    assert dds.choices == {"kernel": DDS_KERNELS + DDS_RDMS, "feature_norm": FEATURE_NORMS}
    assert registry.FIELD_METHODS == ("modelgif", "ig", "saliency", "gradxinput")
    assert registry.SET_METHODS == ("rsa", "cka", "dds")
    assert all(m.compute is None for m in REGISTRY.values() if m.kind != "estimator" and m.name != "field_cka")
    assert REGISTRY["field_cka"].compute == "modelgif.compare.field_cka:field_cka_distances"
    assert {n: m.compute for n, m in REGISTRY.items() if m.kind == "estimator"} == {
        n: f"modelgif.compare.estimator_distances:{n}_distances" for n in ("logme", "linear_mse", "knn")}
    with pytest.raises(ValueError, match="dds: unknown kernel 'gauss'; valid: laplacian"):
        check_method("dds", {"kernel": "gauss"})
