"""Canonical forms (one representative per orbit), weight matching, interpolation and the exports."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from archdsl.symmetry.canon import interpolate
from archdsl.symmetry.export import layers, rebasin, to_json
from tests.symmetry.helpers import SMALL_MODELS, harness, spec


@pytest.mark.parametrize("name", SMALL_MODELS)
def test_canonical_form_is_the_same_for_every_point_of_an_orbit(name: str) -> None:
    s, h = spec(name), harness(name)
    a = h.state
    ca = s.canonicalize(a)
    for seed in range(2):
        cb = s.canonicalize(s.apply(a, s.sample(seed, ("perm", "block", "scale", "sign"))))   # GL: not canonical
        assert all(torch.allclose(ca[k], cb[k], rtol=1e-9, atol=1e-12) for k in a), name
    assert h.error(s, s.identity()) == 0
    assert h.run(ca)[0].shape == h.run(a)[0].shape
    from archdsl.symmetry.check import relative_error
    assert relative_error(h.run(a), h.run(ca)) < 1e-9                 # canonicalising keeps the function


def test_equivalent_tells_same_function_from_a_perturbed_one() -> None:
    s, h = spec("tiny_resnet"), harness("tiny_resnet")
    b = s.apply(h.state, s.sample(3))
    assert s.equivalent(h.state, b)
    b["layer1.0.bn1.bias"] = b["layer1.0.bn1.bias"] + 1e-3
    assert not s.equivalent(h.state, b)


@pytest.mark.parametrize("name", ["mlp", "tiny_resnet", "grouped", "tiny_vit"])
def test_weight_matching_recovers_a_hidden_permutation_exactly(name: str) -> None:
    s, h = spec(name), harness(name)
    b = s.apply(h.state, s.sample(7, ("perm",)))
    g, aligned = s.align(h.state, b)
    assert all(torch.equal(aligned[k], h.state[k]) for k in h.state)


def test_weight_matching_of_independent_models_lowers_the_distance_and_keeps_the_function() -> None:
    from archdsl.symmetry.check import Harness, relative_error

    s = spec("tiny_resnet")
    a, b = harness("tiny_resnet").state, Harness.build(harness("tiny_resnet").graph, seed=1)
    _, aligned = s.align(a, b.state)
    dist = {k: float((a[k] - b.state[k]).norm()) for k in a if a[k].is_floating_point()}
    after = {k: float((a[k] - aligned[k]).norm()) for k in a if a[k].is_floating_point()}
    assert sum(after.values()) < sum(dist.values())
    assert relative_error(b.run(b.state), b.run(aligned)) < 1e-9
    mid = interpolate(a, aligned, 0.5)
    assert torch.allclose(mid["fc.weight"], (a["fc.weight"] + aligned["fc.weight"]) / 2)


def test_rebasin_export_names_whole_axes_and_segments() -> None:
    view = rebasin(spec("segments"))
    assert view["axes_to_perm"]["c.weight"][0] == view["axes_to_perm"]["c.bias"][0]
    segs = view["axes_to_perm"]["a.weight"][0]
    assert isinstance(segs, list) and {x["start"] for x in segs} == {0, 3, 6}     # 2:3 is a one-unit class
    assert view["axes_to_perm"]["e.weight"][0] is None                         # the pinned output
    assert all(["c.weight", 0] in axes or ["c.weight", 1] in axes for p, axes in view["perm_to_axes"].items()
               if any(a[0] == "c.weight" for a in axes))
    json.dumps(view)


def test_rebasin_export_of_resnet18_matches_the_hand_spec_shape() -> None:
    view = rebasin(spec("resnet18"))
    a2p = view["axes_to_perm"]
    assert a2p["layer1.0.conv1.weight"][1] == a2p["conv1.weight"][0] == a2p["layer1.1.conv2.weight"][0]
    assert a2p["layer2.0.downsample.0.weight"][0] == a2p["layer2.1.conv2.weight"][0] != a2p["conv1.weight"][0]
    assert a2p["layer2.0.conv1.weight"][2:] == [None, None]
    assert a2p["fc.weight"] == [None, a2p["layer4.1.bn2.weight"][0]]


def test_layers_and_json_exports_cover_every_weight() -> None:
    s = spec("grouped")
    view, full = layers(s), to_json(s)
    assert set(view["weights"]) == set(s.shapes)
    slabs = [x for x in view["weights"]["g1.weight"]["axes"][1]]
    assert len(slabs) == 4 and all("slab" in x for x in slabs)
    assert full["block_classes"][0]["size"] == 4
    json.dumps(full)


def test_sample_rejects_unknown_kinds_and_takes_generators() -> None:
    from archdsl.errors import UsageError

    s = spec("mlp")
    with pytest.raises(UsageError, match="unknown group kinds"):
        s.sample(0, ("rotation",))
    g1, g2 = s.sample(np.random.default_rng(5)), s.sample(np.random.default_rng(5))
    assert all(np.array_equal(g1.perms[k], g2.perms[k]) for k in g1.perms)
