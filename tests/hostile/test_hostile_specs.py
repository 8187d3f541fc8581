"""Families 2 and 3: whatever `check` accepts, `build` builds; limits refuse before the work, with a location."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import archdsl
from archdsl.elaborate import builder
from archdsl.errors import ArchError, LimitError, UsageError, VerifyError
from archdsl.reserved import GENERATED_ATTRIBUTES, TORCH_MODULE_ATTRIBUTES
from archdsl.verify import verify
from tests.hostile._hostile import cli, one_paragraph, run_limited


def model(body: str, before: str = "", dims: str = "N, 3") -> str:
    return before + f"model M() {{\n  in x: [{dims}]\n" + body + "\n}\n"


def refused(source: str, kind: type[ArchError] = ArchError) -> ArchError:
    with pytest.raises(kind) as info:
        archdsl.compile(source)
    assert info.value.diagnostics[0].span is not None, info.value.render()
    one_paragraph(info.value.render())
    return info.value


# -- family 2: names that cannot be nn.Module attributes are refused by check, with a location --------------

CLASHES = ["training", "_modules", "__init__", "forward", "cuda", "archdsl_source", "_input_spec", "_parameters",
           "state_dict", "__class__", "reparameterize", "T_destination"]


@pytest.mark.parametrize("name", CLASHES)
def test_layer_names_that_clash_with_nn_module(name: str) -> None:
    exc = refused(model(f"  {name} = Linear(4)\n  out x |> {name}"), VerifyError)
    assert f"layer name '{name}'" in exc.diagnostics[0].message and exc.diagnostics[0].span.line == 3


@pytest.mark.parametrize("name", ["training", "forward", "_buffers"])
def test_nested_and_free_parameter_names(name: str) -> None:
    refused(model(f"  body = seq{{{name}: Linear(4)}}\n  out x |> body"), VerifyError)
    refused(model(f"  {name} = Parameter((3,), \"zeros\")\n  out x + {name}"), VerifyError)


def test_cli_check_reports_a_clash_with_exit_1(here: Path, capsys) -> None:
    (here / "clash.arch").write_text(model("  training = Linear(4)\n  out x |> training"))
    code, _, err = cli(capsys, "check", "clash.arch")
    assert code == 1 and err.startswith("clash.arch:3:14: error: layer name 'training'")
    code, _, err = cli(capsys, "build", "clash.arch", "-o", "OUT")
    assert code == 1 and "clash.arch:3:14" in err and not (here / "OUT").exists()


def test_reserved_names_cover_the_installed_torch() -> None:
    """The static list (check does not import torch) covers every attribute of torch's nn.Module."""
    live = {n for n in set(dir(torch.nn.Module)) | set(vars(torch.nn.Module())) if not n.startswith("__")}
    assert live <= TORCH_MODULE_ATTRIBUTES
    built = archdsl.build(model("  fc = Linear(4)\n  out x |> fc"), check_inputs=True)
    extra = {n for n in vars(built) if n not in vars(torch.nn.Module())}
    assert extra <= GENERATED_ATTRIBUTES | {"_input_spec"}


@pytest.mark.parametrize("body", [
    "  out x |> seq[Linear(3), relu]",                          # the README's unnamed top-level container
    "  out x |> seq[Linear(3), seq[Linear(3), relu], relu]",
    "  out x |> [Linear(3), relu]",
    "  a = seq[Linear(3)]\n  out x |> seq[a, Linear(3)]",
])
def test_top_level_unnamed_containers_build(body: str) -> None:
    graph = archdsl.compile(model(body))
    module = archdsl.build(graph)
    assert module(torch.randn(2, 3)).shape[0] == 2


@pytest.mark.parametrize("init", ["normal(std=-1)", "uniform(a=1, b=0)", "trunc_normal(std=0)",
                                  "trunc_normal(std=1, a=2, b=1)", "constant(value=1e999)", "constant(value=nan)",
                                  "constant(value=-inf)", "uniform(a=5)", "uniform(bound=-1)", "normal(mean=1e39)"])
def test_invalid_initialiser_values(init: str) -> None:
    exc = refused(model(f'  p = Parameter((3,), "{init}")\n  out x + p'))
    assert exc.diagnostics[0].span.line == 3


@pytest.mark.parametrize("init", ["normal(std=0)", "uniform(a=-1, b=1)", "trunc_normal(std=0.02)",
                                  "constant(value=3e38)", "uniform(a=0)", "uniform(b=0.5)"])
def test_valid_edge_initialisers_build(init: str) -> None:
    module = archdsl.build(model(f'  p = Parameter((3,), "{init}")\n  out x + p'))
    assert torch.isfinite(module.p).all()


@pytest.mark.parametrize("value", [float("inf"), float("nan"), float("-inf")])
def test_non_finite_attributes_are_refused_in_graphs(value: float) -> None:
    """A graph with eps=inf (from graph.json or a pass) fails verify, never emits a bare `inf` name."""
    graph = archdsl.compile(model("  n = LayerNorm()\n  out x |> n"))
    node = graph.nodes[0]
    bad = graph.replace(nodes=(node.model_copy(update={"op": node.op.model_copy(update={"eps": value})}),))
    with pytest.raises(VerifyError, match="must be finite"):
        verify(bad)
    for spec in ("LayerNorm(eps=1e999)", "LayerNorm(eps=1e999 - 1e999)"):
        refused(model(f"  out x |> {spec}"))


# -- family 3: resource limits before the work ---------------------------------------------------------------

@pytest.mark.parametrize("body, dims", [
    ("  fc = Linear(1000000)\n  out x |> fc", "N, 1000000"),
    ("  e = Embedding(10**9, 4096)\n  out x |> e", "N, 3"),
    ("  p = Parameter((2**20, 2**20, 16), \"zeros\")\n  out x", "N, 3"),
    ("  body = [Linear(65536) for i in range(5000)]\n  out x |> body", "N, 65536"),
])
def test_parameter_memory_budget(body: str, dims: str) -> None:
    """check refuses a model whose parameters need more than the budget, fast and at the layer that crosses it."""
    source = model(body, dims=dims).replace("in x: [N, 3]", "in x: int64[N, 3]") if "Embedding" in body else \
        model(body, dims=dims)
    exc = refused(source, LimitError)
    assert "more than the limit of 64.0 GiB" in exc.diagnostics[0].message


def test_parameter_budget_counts_replayed_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(builder, "MAX_PARAM_BYTES", 10_000)
    block = "block B() {\n  in x: [N, 16]\n  fc = Linear(16)\n  out x |> fc\n}\n"
    exc = refused(model("  body = [B() for i in range(20)]\n  out x |> body", block, dims="N, 16"), LimitError)
    assert exc.diagnostics[0].message.startswith("the model's parameters need")


def test_build_of_a_huge_hand_made_graph_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    graph = archdsl.compile(model("  fc = Linear(4)\n  out x |> fc"))
    monkeypatch.setattr(builder, "MAX_PARAM_BYTES", 16)
    with pytest.raises(LimitError):
        archdsl.build(graph)


@pytest.mark.parametrize("body, dims", [
    ("  out x |> split(1, 1) |> first", "N, 4000000000000000000"),
    ("  out x |> chunk(10**18, 0) |> first", "N, 8"),
    ("  out x |> chunk(20000, 1) |> first", "N, 20000"),
    ("  out x |> split(1, 1) |> first", "N, 10001"),
])
def test_split_and_chunk_of_huge_axes(body: str, dims: str) -> None:
    exc = refused(model(body, dims=dims))
    assert "more than the limit of 10,000" in exc.render()


@pytest.mark.parametrize("text", ["99999999999999999999", "-9223372036854775809", "9223372036854775808"])
def test_param_values_beyond_64_bits(here: Path, capsys, text: str) -> None:
    (here / "p.arch").write_text("model P(w: int = 4) {\n  in x: [N, 3]\n  fc = Linear(w)\n  out x |> fc\n}\n")
    code, _, err = cli(capsys, "check", "p.arch", "--param", f"w={text}")
    assert code == 2 and "64 bits" in err
    one_paragraph(err)


@pytest.mark.parametrize("value", [2**64, -(2**63) - 1, 10**30])
def test_api_values_beyond_64_bits(value: int) -> None:
    spec = "model P(w: int = 4) {\n  in x: [N, 3]\n  fc = Linear(w)\n  out x |> fc\n}\n"
    with pytest.raises(ArchError):
        archdsl.compile(spec, w=value)


def exponential(levels: int) -> str:
    text = "".join(f"block B{i}() {{\n  in x: [N, 3]\n  a = B{i + 1}()\n  b = B{i + 1}()\n  out x |> a |> b\n}}\n"
                   for i in range(levels))
    text += f"block B{levels}() {{\n  in x: [N, 3]\n  out relu(x)\n}}\n"
    return text + "model M() {\n  in x: [N, 3]\n  b = B0()\n  out x |> b\n}\n"


def test_exponential_block_expansion_is_refused_before_cloning(monkeypatch: pytest.MonkeyPatch) -> None:
    """40 levels x 2: refused at the application that would pass the node limit, naming it."""
    monkeypatch.setattr(builder, "MAX_NODES", 5_000)
    exc = refused(exponential(40), LimitError)
    assert "more than 5,000 nodes" in exc.diagnostics[0].message and "this B" in exc.diagnostics[0].message


@pytest.mark.slow
def test_exponential_expansion_under_limits(tmp_path: Path) -> None:
    """The real limit, in a subprocess with a 3 GB memory cap and a timeout: a message, never a hang or a kill."""
    (tmp_path / "expo.arch").write_text(exponential(40))
    proc = run_limited(["check", "expo.arch"], tmp_path, timeout=120)
    assert proc.returncode == 1 and "nodes" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-3000:]


@pytest.mark.parametrize("make", [
    lambda n: "x" + " + x" * n,
    lambda n: "x" + " |> relu" * n,
    lambda n: "-" * n + "x",
    lambda n: "x" + "[0]" * n,
    lambda n: "relu(" * (n // 3) + "x" + ")" * (n // 3),
], ids=["sum", "pipes", "negations", "indexing", "calls"])
def test_huge_one_line_expressions_are_refused_fast_and_located(make) -> None:
    """A 4 MiB one-line expression: refused in well under a second at the operator that crosses the limit."""
    expr = make(1_000_000 // 8)
    exc = refused(model(f"  out {expr}"), LimitError)
    span = exc.diagnostics[0].span
    assert span.line == 3 and span.column > 100 and "nest" in exc.diagnostics[0].message


@pytest.mark.parametrize("depth", [150, 199])
def test_fmt_of_deeply_nested_lists(here: Path, capsys, depth: int) -> None:
    (here / "deep.arch").write_text("let a = " + "[" * depth + "]" * depth + "\n" + model("  out x"))
    code, out, err = cli(capsys, "fmt", "deep.arch")
    assert (code == 0 and out.startswith("let a = [")) or (code == 1 and "deep.arch:1:" in err), err
    one_paragraph(err) if code else None


def test_usage_errors_of_the_api() -> None:
    for source in (None, 123, b"model M() {}", ["a.arch"]):
        with pytest.raises(UsageError, match="a spec is a path or spec text"):
            archdsl.compile(source)
    graph = archdsl.compile(model("  out relu(x)"))
    with pytest.raises(UsageError, match="width"):
        archdsl.build(graph, width=3)
    with pytest.raises(UsageError, match="model"):
        archdsl.build(graph, "M")
    for seed in (2**64, -(2**63) - 1, 1.5, "0"):
        with pytest.raises(UsageError, match="seed"):
            archdsl.build(graph, seed=seed)
