"""save_built / load_built / `archdsl build`: plain files, atomic writes, no pickle, no running model.py."""

from __future__ import annotations

import ast
import importlib.util
import pickle
import struct
import sys

import pytest
import torch

import archdsl
from archdsl.backends.torch.build import build_module
from archdsl.backends.torch.codegen import attr_ref, class_name, generate_source
from archdsl.cli import main
from archdsl.errors import UsageError
from archdsl.saving import load_built, save_built
from tests.tiny_resnet import with_block

SPEC = with_block("""\
model Small(num_classes: int = 3) {
  in image: [N, 3, H, W]
  conv1 = Conv2d(4, 3, padding=1, bias=false)
  bn1 = BatchNorm2d()
  layer1 = [BasicBlock(6, stride=2 if i == 0 else 1) for i in range(2)]
  fc = Linear(num_classes)
  out image |> conv1 |> bn1 |> relu |> layer1 |> AdaptiveAvgPool2d(1) |> flatten |> fc
}
""")
FILES = {"model.py", "weights.safetensors", "graph.json"}


@pytest.fixture(scope="module")
def graph() -> archdsl.Graph:
    return archdsl.compile(SPEC)


@pytest.fixture
def trained(graph) -> torch.nn.Module:
    """A module whose BatchNorm statistics moved away from their initial values."""
    module = build_module(graph, seed=4)
    module(torch.randn(4, 3, 8, 8) * 2 + 1)
    return module.eval()


def _no_pickle(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("pickle was used")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)


def test_round_trip_same_outputs_without_pickle(graph, trained, tmp_path, monkeypatch):
    out = tmp_path / "built"
    paths = save_built(graph, trained, out)
    assert set(paths) == FILES and {p.name for p in out.iterdir()} == FILES
    assert [p.name for p in tmp_path.iterdir()] == ["built"]   # no temporary folders left behind
    (out / "model.py").write_text("raise RuntimeError('model.py must not be run by load_built')\n")
    _no_pickle(monkeypatch)
    loaded = load_built(out).eval()
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(loaded(x), trained(x), rtol=0, atol=0)
    for name, value in trained.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name
    assert loaded.state_dict()["bn1.num_batches_tracked"].dtype == torch.int64


def test_weights_file_is_safetensors(graph, trained, tmp_path):
    save_built(graph, trained, tmp_path / "m")
    data = (tmp_path / "m" / "weights.safetensors").read_bytes()
    (size,) = struct.unpack("<Q", data[:8])
    assert data[8:9] == b"{" and b"layer1.0.downsample.0.weight" in data[8:8 + size]
    assert archdsl.Graph.from_json((tmp_path / "m" / "graph.json").read_text()) == graph


def test_model_py_is_a_standalone_module(graph, trained, tmp_path):
    save_built(graph, trained, tmp_path / "m")
    spec = importlib.util.spec_from_file_location("saved_model_small", tmp_path / "m" / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    imported = {name.split(".")[0] for node in ast.walk(ast.parse((tmp_path / "m" / "model.py").read_text()))
                if isinstance(node, ast.Import | ast.ImportFrom)
                for name in ([node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names])}
    assert imported == {"torch", "archdsl"}
    fresh = getattr(module, class_name(graph))()
    fresh.load_state_dict(load_built(tmp_path / "m").state_dict())
    x = torch.randn(1, 3, 8, 8)
    torch.testing.assert_close(fresh.eval()(x), trained(x))


def test_shared_tensors_are_saved_once(graph, tmp_path):
    module = build_module(graph, seed=0)
    module.layer1[1].conv2.weight = module.layer1[1].conv1.weight   # tie two same-shaped weights
    save_built(graph, module, tmp_path / "m")
    loaded = load_built(tmp_path / "m")
    assert torch.equal(loaded.layer1[1].conv2.weight, module.layer1[1].conv1.weight)
    assert torch.equal(loaded.layer1[1].conv1.weight, module.layer1[1].conv1.weight)


def test_refuses_to_clobber_without_force(graph, trained, tmp_path):
    out = tmp_path / "m"
    save_built(graph, trained, out)
    before = (out / "weights.safetensors").read_bytes()
    with pytest.raises(UsageError, match="already exists"):
        save_built(graph, build_module(graph, seed=9), out)
    assert (out / "weights.safetensors").read_bytes() == before
    save_built(graph, build_module(graph, seed=9), out, force=True)
    assert (out / "weights.safetensors").read_bytes() != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_force_never_replaces_a_folder_with_other_files(graph, trained, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="did not write"):
        save_built(graph, trained, tmp_path, force=True)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_load_rejects_a_folder_that_is_not_a_build(tmp_path):
    with pytest.raises(UsageError, match="not a built model"):
        load_built(tmp_path)
    (tmp_path / "graph.json").write_text('{"name": 1}')
    (tmp_path / "weights.safetensors").write_bytes(b"")
    with pytest.raises(UsageError, match="not a valid archdsl graph"):
        load_built(tmp_path)


def test_load_rejects_weights_of_another_model(graph, tmp_path):
    save_built(graph, build_module(graph), tmp_path / "a")
    other = archdsl.compile(SPEC, num_classes=4)
    save_built(other, build_module(other), tmp_path / "b")
    (tmp_path / "a" / "weights.safetensors").write_bytes((tmp_path / "b" / "weights.safetensors").read_bytes())
    with pytest.raises(UsageError, match="does not fit"):
        load_built(tmp_path / "a")


def test_generated_source_is_safe_for_any_graph_text(graph):
    hostile = 'x"""\nimport os\nos.system("echo pwned")\n"""\\'
    g = graph.replace(name=hostile, doc=hostile)
    tree = ast.parse(generate_source(g, source=hostile))
    kinds = [type(node).__name__ for node in tree.body]
    assert kinds == ["Expr", "Import", "Import", "Import", "ImportFrom", "ClassDef"]
    assert ast.get_docstring(tree).startswith("Generated by archdsl from x")
    assert build_module(g, seed=0) is not None


def test_attribute_paths_and_class_names_stay_valid_python():
    assert attr_ref("layer1.0.conv1") == "self.layer1[0].conv1"
    assert attr_ref("blocks.class.007") == "self.blocks._modules['class']._modules['007']"
    assert class_name(archdsl.Graph(name="torch", inputs={}, nodes=(), outputs={}, params={})) == "Model_torch"


def test_cli_build_writes_and_refuses_to_clobber(tmp_path, capsys):
    spec = tmp_path / "small.arch"
    spec.write_text(SPEC)
    out = tmp_path / "out"
    assert main(["build", str(spec), "-o", str(out), "--seed", "3", "--param", "num_classes=7"]) == 0
    printed = capsys.readouterr().out
    assert "model.py" in printed and "weights.safetensors" in printed and "parameters" in printed
    expected = archdsl.build(spec, seed=3, num_classes=7).state_dict()
    loaded = load_built(out).state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in expected.items()) and loaded["fc.bias"].shape == (7,)
    assert main(["build", str(spec), "-o", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["build", str(spec), "-o", str(out), "--force", "--check-inputs"]) == 0
    assert "rt.check_inputs" in (out / "model.py").read_text()
    with pytest.raises(SystemExit) as info:   # argparse: -o is required
        main(["build", str(spec)])
    assert info.value.code == 2


def test_cli_build_reports_spec_errors(tmp_path, capsys):
    spec = tmp_path / "bad.arch"
    spec.write_text(SPEC.replace("Linear(num_classes)", "Linear(num_classes, nope=1)"))
    assert main(["build", str(spec), "-o", str(tmp_path / "out")]) == 1
    assert "bad.arch:" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_load_built_is_exported():
    assert archdsl.load_built is load_built and archdsl.save_built is save_built
    assert "archdsl.saving" in sys.modules
