"""load_built builds on the meta device and assigns the loaded tensors: the same module as init-then-copy.

The old path (build with PyTorch-default init, then ``load_state_dict`` copies) is the reference: every
parameter and buffer bitwise equal, the same names, ties, dtypes, requires_grad and train/eval state, and
the same outputs and gradients.
"""

from __future__ import annotations

import pytest
import torch

import archdsl
from archdsl.backends.torch.build import StateMismatch, build_loaded, build_module
from archdsl.errors import UsageError
from archdsl.saving import load_built, save_built

SMALL = """\
model Small(num_classes: int = 3) {
  in image: [N, 3, H, W]
  stem = seq[Conv2d(4, 3, padding=1, bias=false), BatchNorm2d()]
  norm = LayerNorm2d()
  scale = LayerScale(0.5, dim=1)
  fc = Linear(num_classes)
  out image |> stem |> relu |> norm |> scale |> AdaptiveAvgPool2d(1) |> flatten |> fc
}
"""


def old_path(graph: archdsl.Graph, state: dict[str, torch.Tensor]) -> torch.nn.Module:
    """What load_built did before: initialise every weight, then copy the loaded ones over it."""
    module = build_module(graph, seed=None)
    module.load_state_dict(state, strict=True)
    return module


def assert_same_module(a: torch.nn.Module, b: torch.nn.Module, x: torch.Tensor) -> None:
    """Same tensors (bitwise, non-persistent buffers too), ties, flags, outputs and gradients."""
    assert a.training == b.training
    pa, pb = dict(a.named_parameters(remove_duplicate=False)), dict(b.named_parameters(remove_duplicate=False))
    assert list(pa) == list(pb) and len(list(a.parameters())) == len(list(b.parameters()))
    for name in pa:
        assert type(pa[name]) is type(pb[name]) and pa[name].requires_grad == pb[name].requires_grad, name
        assert pa[name].device.type == "cpu" and torch.equal(pa[name], pb[name]), name
    ba, bb = dict(a.named_buffers()), dict(b.named_buffers())
    assert list(ba) == list(bb) and all(ba[k].dtype == bb[k].dtype and torch.equal(ba[k], bb[k]) for k in ba)
    for module in (a, b):
        torch.manual_seed(0)
        module(x).sum().backward()
    for name in pa:
        assert torch.equal(pa[name].grad, pb[name].grad), name
    with torch.no_grad():
        assert torch.equal(a.eval()(x), b.eval()(x))


@pytest.mark.parametrize("name", ["efficientnet_b0", pytest.param("swiftformer_xs", marks=pytest.mark.slow)])
def test_zoo_model_loads_like_init_then_copy(name: str, tmp_path) -> None:
    graph = archdsl.zoo.compile(name)
    save_built(graph, archdsl.build(graph, seed=3), tmp_path / "m")
    loaded = load_built(tmp_path / "m")
    reference = old_path(graph, archdsl.build(graph, seed=3).state_dict())
    assert_same_module(loaded, reference, torch.randn(2, 3, 64, 64))


def test_small_spec_and_batchnorm_statistics(tmp_path) -> None:
    graph = archdsl.compile(SMALL)
    trained = archdsl.build(graph, seed=1)
    trained(torch.randn(4, 3, 8, 8))                    # running stats and num_batches_tracked move
    save_built(graph, trained, tmp_path / "m")
    loaded = load_built(tmp_path / "m")
    assert int(loaded.stem[1].num_batches_tracked) == 1
    assert_same_module(loaded, old_path(graph, trained.state_dict()), torch.randn(2, 3, 8, 8))


def test_tied_parameters_stay_one_parameter() -> None:
    """A Parameter registered under two names is one Parameter after loading (assign would split it)."""
    graph = archdsl.compile(SMALL)
    state = archdsl.build(graph, seed=1).state_dict()
    original = archdsl.backends.torch.build.load_source

    def tying(source: str, cls_name: str):
        cls = original(source, cls_name)

        class Tied(cls):
            def __init__(self) -> None:
                super().__init__()
                self.register_parameter("fc_weight_alias", self.fc.weight)
        return Tied

    archdsl.backends.torch.build.load_source = tying
    try:
        module = build_loaded(graph, {**state, "fc_weight_alias": state["fc.weight"]})
    finally:
        archdsl.backends.torch.build.load_source = original
    assert module.fc_weight_alias is module.fc.weight
    assert len(list(module.parameters())) == len(list(archdsl.build(graph).parameters()))


def test_buffer_outside_the_state_is_computed_not_left_on_meta() -> None:
    """A non-persistent buffer made in __init__ cannot come from the file: the module is built on the CPU."""
    graph = archdsl.compile(SMALL)
    state = archdsl.build(graph, seed=1).state_dict()
    original = archdsl.backends.torch.build.load_source

    def with_buffer(source: str, cls_name: str):
        cls = original(source, cls_name)

        class Buffered(cls):
            def __init__(self) -> None:
                super().__init__()
                self.register_buffer("grid", torch.arange(6.0).reshape(2, 3), persistent=False)
        return Buffered

    archdsl.backends.torch.build.load_source = with_buffer
    try:
        module = build_loaded(graph, state)
    finally:
        archdsl.backends.torch.build.load_source = original
    assert torch.equal(module.grid, torch.arange(6.0).reshape(2, 3))
    assert not any(t.is_meta for t in [*module.parameters(), *module.buffers()])
    assert torch.equal(module.fc.weight, state["fc.weight"])


def test_misfit_state_is_a_state_mismatch_and_a_clean_load_error(tmp_path) -> None:
    graph = archdsl.compile(SMALL)
    state = archdsl.build(graph).state_dict()
    with pytest.raises(StateMismatch, match="fc.weight"):
        build_loaded(graph, {**state, "fc.weight": torch.zeros(5, 4)})
    with pytest.raises(StateMismatch, match="Missing key"):
        build_loaded(graph, {k: v for k, v in state.items() if k != "fc.bias"})
    save_built(graph, archdsl.build(graph), tmp_path / "m")
    other = archdsl.compile(SMALL, num_classes=4)
    save_built(other, archdsl.build(other), tmp_path / "o")
    (tmp_path / "m" / "weights.safetensors").write_bytes((tmp_path / "o" / "weights.safetensors").read_bytes())
    with pytest.raises(UsageError, match="does not fit"):
        load_built(tmp_path / "m")


def test_another_checkpoint_of_a_loaded_graph_and_a_tampered_graph(tmp_path) -> None:
    """A second load of the same graph.json bytes reuses the verified graph and source, never the weights;
    changed bytes are read as untrusted again."""
    graph = archdsl.compile(SMALL)
    save_built(graph, archdsl.build(graph, seed=1), tmp_path / "a")
    save_built(graph, archdsl.build(graph, seed=2), tmp_path / "b")
    a, b = load_built(tmp_path / "a"), load_built(tmp_path / "b")
    assert a.archdsl_graph is b.archdsl_graph and a.archdsl_source is b.archdsl_source
    assert_same_module(b, old_path(graph, archdsl.build(graph, seed=2).state_dict()), torch.randn(2, 3, 8, 8))
    assert not torch.equal(a.fc.weight, b.fc.weight)
    path = tmp_path / "b" / "graph.json"
    path.write_text(path.read_text().replace('"relu"', '"no_such_op"'))
    with pytest.raises(UsageError, match="not a valid archdsl graph"):
        load_built(tmp_path / "b")


def test_meta_construction_skips_only_initialisers_of_meta_tensors() -> None:
    """on_meta: tensors made without a device land on meta, uninitialised; one made on the CPU is initialised."""
    from archdsl.backends.torch.build import on_meta

    class Mixed(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3)
            self.bn = torch.nn.BatchNorm2d(4)
            self.table = torch.nn.Parameter(torch.nn.init.normal_(torch.empty(5, 2, device="cpu"), std=3.0))
            self.register_buffer("ones", torch.ones(3, device="cpu").fill_(2.0))

    module = on_meta(Mixed)
    assert module.conv.weight.is_meta and module.bn.running_var.is_meta and module.bn.num_batches_tracked.is_meta
    assert module.table.device.type == "cpu" and module.table.std() > 1.0
    assert torch.equal(module.ones, torch.full((3,), 2.0))
    torch.manual_seed(0)
    with torch.device("meta"):
        plain = Mixed()
    torch.manual_seed(0)
    assert torch.equal(on_meta(Mixed).table, plain.table)      # the same random numbers as a plain meta build


@pytest.mark.parametrize("check_inputs", [False, True])
def test_cli_build_writes_the_source_of_the_module_it_built(tmp_path, check_inputs: bool) -> None:
    """`archdsl build` writes the source it generated for the module (not a second generation): the same text
    as generating it from the graph with the spec's name and the same --check-inputs."""
    from archdsl.backends.torch.codegen import generate_source
    from archdsl.cli import main

    spec = tmp_path / "small.arch"
    spec.write_text(SMALL)
    assert main(["build", str(spec), "-o", str(tmp_path / "m"), *(["--check-inputs"] if check_inputs else [])]) == 0
    graph = archdsl.compile(spec)
    assert (tmp_path / "m" / "model.py").read_text() == generate_source(graph, check_inputs, source=str(spec))
    assert hasattr(load_built(tmp_path / "m", check_inputs=check_inputs), "_input_spec") == check_inputs


def test_loaded_graph_memo_is_bounded_and_keyed_by_check_inputs(tmp_path, monkeypatch) -> None:
    from archdsl import saving

    monkeypatch.setattr(saving, "_LOADED", {})
    monkeypatch.setattr(saving, "_MEMO_ENTRIES", 2)
    for classes in (3, 4, 5):
        graph = archdsl.compile(SMALL, num_classes=classes)
        save_built(graph, archdsl.build(graph), tmp_path / str(classes))
        load_built(tmp_path / str(classes))
    assert len(saving._LOADED) == 2                  # the oldest went
    plain, checked = load_built(tmp_path / "5"), load_built(tmp_path / "5", check_inputs=True)
    assert not hasattr(plain, "_input_spec") and hasattr(checked, "_input_spec")
    assert plain.archdsl_graph is checked.archdsl_graph or plain.archdsl_graph == checked.archdsl_graph
