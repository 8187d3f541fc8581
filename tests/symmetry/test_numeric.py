"""Soundness, tightness and the group law, on numbers (float64, eval mode, random BatchNorm statistics)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from archdsl.symmetry import GroupElement
from archdsl.symmetry.check import relative_error
from tests.symmetry.helpers import CHANGED, SMALL_MODELS, TIGHT, harness, spec


def shift(n: int) -> np.ndarray:
    """A permutation with no fixed point."""
    return np.roll(np.arange(n), 1)


@pytest.mark.parametrize("name", SMALL_MODELS)
@pytest.mark.parametrize("kinds", [("perm", "block"), ("scale", "sign"), ("linear",),
                                   ("perm", "block", "scale", "sign", "linear")], ids=["perm", "scale", "gl", "all"])
def test_random_group_elements_leave_the_outputs_unchanged(name: str, kinds: tuple) -> None:
    s, h = spec(name), harness(name)
    for seed in range(2):
        g = s.sample(seed, kinds)
        assert g.perms or g.scales or g.blocks or kinds == ("linear",)
        assert h.error(s, g) < TIGHT


def test_resnet18_keeps_its_outputs_under_a_random_group_element() -> None:
    s, h = spec("resnet18"), harness("resnet18")
    assert h.error(s, s.sample(0)) < TIGHT


@pytest.mark.parametrize("name", SMALL_MODELS)
def test_identity_and_single_transpositions_are_symmetries(name: str) -> None:
    s, h = spec(name), harness(name)
    assert h.error(s, s.identity()) == 0
    for c in s.classes:
        if c.size > 1:
            p = np.arange(c.size)
            p[[0, -1]] = p[[-1, 0]]
            assert h.error(s, GroupElement(perms={s.leaf_of[c.id]: p})) < TIGHT


def test_grouped_transposed_convolution_is_sound_and_tight() -> None:
    s, h = spec("decoder"), harness("decoder")
    assert [b.size for b in s.block_classes] == [2]
    assert max(h.error(s, s.sample(seed)) for seed in range(3)) < TIGHT
    for c in s.classes:
        g = GroupElement(perms={s.leaf_of[c.id]: shift(c.size)})
        for m in c.members:
            assert h.error(s, g, lambda e, m=m: (e.param, e.axis, e.index) != (m.param, m.axis, m.index)) > CHANGED


def test_batchnorm_statistics_are_not_trivial() -> None:
    state = harness("tiny_resnet").state
    assert state["bn1.running_var"].std() > 0.1 and state["bn1.running_mean"].abs().max() > 0.01


@pytest.mark.parametrize("name", ["mlp", "tiny_resnet", "grouped", "segments"])
def test_permuting_any_member_alone_changes_the_outputs(name: str) -> None:
    # Every tie in a class's provenance matters: leave out one member and the function changes.
    s, h = spec(name), harness(name)
    for c in s.classes[:3]:                     # (the first classes hold the most ties: stems and streams)
        if c.size < 2:
            continue
        g = GroupElement(perms={s.leaf_of[c.id]: shift(c.size)})
        for m in c.members:
            def keep(e, m=m):
                return not (e.param == m.param and e.axis == m.axis and e.index == m.index)
            assert h.error(s, g, keep) > CHANGED, f"{c.id}: {m} left out and nothing changed"


@pytest.mark.parametrize(("name", "cid", "factor"), [("mlp", "c0", -1.0), ("mlp", "c1", 2.0), ("mlp", "c2", 2.0),
                                                     ("mlp", "c2", -1.0)], ids=["relu-sign", "tanh-scale",
                                                                                "gelu-scale", "gelu-sign"])
def test_scalings_an_activation_does_not_allow_change_the_outputs(name: str, cid: str, factor: float) -> None:
    s, h = spec(name), harness(name)
    leaf = s.leaf_of[cid]
    c = s.find(cid)
    tokens = {seg.token for e in s.entries for seg in e.segs if seg.leaf == leaf and seg.token is not None}
    g = GroupElement(scales={(t, leaf): np.full(c.size, factor) for t in tokens})
    assert h.error(s, g) > CHANGED


def test_an_invertible_matrix_is_a_symmetry_only_between_linear_maps() -> None:
    s, h = spec("bottleneck"), harness("bottleneck")
    assert [c.scalings for c in s.classes] == [["gl"], ["positive"]]
    rng = np.random.default_rng(0)
    for c in s.classes:
        leaf = s.leaf_of[c.id]
        tokens = {seg.token for e in s.entries for seg in e.segs if seg.leaf == leaf and seg.token is not None}
        q, _ = np.linalg.qr(rng.standard_normal((c.size, c.size)))
        err = h.error(s, GroupElement(scales={(t, leaf): q for t in tokens}))
        assert (err < TIGHT) if c.scalings == ["gl"] else (err > CHANGED), (c.id, err)


def test_unstructured_permutation_of_head_units_changes_the_outputs() -> None:
    # Permuting query and key units across heads (ignoring the head blocks) is not a symmetry;
    # the same permutation inside each head is.
    h = harness("tiny_vit")
    name = "blocks.b0.attn.in_proj_weight"
    d = 8

    def permuted(rows: np.ndarray) -> dict:
        state = dict(h.state)
        w = state[name].clone()
        idx = torch.as_tensor(rows)
        w[:d], w[d:2 * d] = w[:d][idx], w[d:2 * d][idx]
        bias = state[name.replace("weight", "bias")].clone()
        bias[:d], bias[d:2 * d] = bias[:d][idx], bias[d:2 * d][idx]
        state[name], state[name.replace("weight", "bias")] = w, bias
        return state

    ref = h.run(h.state)
    across = np.array([2, 1, 0, 3, 4, 5, 6, 7])                # swaps a unit of head 0 with one of head 1
    within = np.array([1, 0, 2, 3, 5, 4, 6, 7])                # swaps inside heads 0 and 2
    assert relative_error(ref, h.run(permuted(across))) > CHANGED
    assert relative_error(ref, h.run(permuted(within))) < TIGHT


@pytest.mark.parametrize("name", ["grouped", "tiny_vit", "segments"])
def test_group_law_holds_exactly_for_permutations(name: str) -> None:
    s, h = spec(name), harness(name)
    g1, g2 = s.sample(1, ("perm", "block")), s.sample(2, ("perm", "block"))
    lhs = s.apply(h.state, s.compose(g1, g2))
    rhs = s.apply(s.apply(h.state, g2), g1)
    assert all(torch.equal(lhs[k], rhs[k]) for k in h.state)


@pytest.mark.parametrize("name", ["tiny_resnet", "grouped"])
def test_group_law_with_scalings(name: str) -> None:
    s, h = spec(name), harness(name)
    g1, g2 = s.sample(3), s.sample(4)
    lhs = s.apply(h.state, s.compose(g1, g2))
    rhs = s.apply(s.apply(h.state, g2), g1)
    assert all(torch.allclose(lhs[k], rhs[k], rtol=1e-12, atol=1e-14) for k in h.state)


def test_numpy_state_dicts_are_accepted_and_inputs_not_modified() -> None:
    s, h = spec("mlp"), harness("mlp")
    state = {k: v.numpy().copy() for k, v in h.state.items()}
    before = {k: v.copy() for k, v in state.items()}
    out = s.apply(state, s.sample(0))
    assert all(isinstance(v, np.ndarray) for v in out.values())
    assert all(np.array_equal(before[k], state[k]) for k in state)
    assert not np.array_equal(out["fc1.weight"], state["fc1.weight"])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mobilenet_v2", "resnext50_32x4d", "convnext_tiny", "efficientnet_b0",
                                  "densenet121", "googlenet", "shufflenet_v2_x1_0", "squeezenet1_1", "vgg11",
                                  "regnet_y_400mf", "mixer_b16_224", "levit_128", "swiftformer_xs", "pvt_v2_b0",
                                  "mobilevit_s", "resnest50d", "alexnet", "mnasnet1_0", "mobilenet_v3_small",
                                  "inception_v3", "repvgg_a0", "mobileone_s0", "seresnet50", "convmixer_768_32",
                                  "resmlp_12_224", "dcgan_generator", "dcgan_discriminator", "espcn_x3",
                                  "sesr_m5_x2", "nin_cifar10", "allcnn_c", "fcn32s_vgg16"])
def test_zoo_models_keep_their_outputs_under_random_group_elements(name: str) -> None:
    s, h = spec(name), harness(name)
    assert h.error(s, s.sample(0)) < TIGHT
