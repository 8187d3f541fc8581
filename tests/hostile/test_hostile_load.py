"""Family 4: an untrusted graph.json or weights file never runs code, never crashes, never over-allocates."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import archdsl
from archdsl.errors import UsageError
from archdsl.saving import load_built, save_built
from tests.hostile._hostile import SPEC, cli, one_paragraph, run_limited

FREE = """\
model Free() {
  in x: [N, 4]
  token = Parameter((1, 4), "normal(std=0.02)")
  fc = Linear(4)
  out x |> fc + token
}
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved small model (a conv, a linear and a free parameter), written once."""
    root = tmp_path_factory.mktemp("built")
    for name, spec in (("small", SPEC), ("free", FREE)):
        graph = archdsl.compile(spec)
        save_built(graph, archdsl.build(graph), root / name)
    return root


def copy(built: Path, tmp_path: Path, name: str = "small") -> Path:
    out = tmp_path / name
    shutil.copytree(built / name, out)
    return out


def edit_graph(folder: Path, change) -> None:
    doc = json.loads((folder / "graph.json").read_text())
    change(doc)
    (folder / "graph.json").write_text(json.dumps(doc))


def refused(folder: Path, *fragments: str) -> str:
    with pytest.raises(UsageError) as info:
        load_built(folder)
    message = info.value.render()
    assert "Traceback" not in message and all(f in message for f in fragments), message
    return message


def test_untouched_build_loads(built: Path) -> None:
    assert isinstance(load_built(built / "small"), torch.nn.Module)


@pytest.mark.parametrize("path", ["a..b", "", "training", "fc.forward", "__class__", ".fc", "fc."])
def test_hostile_module_paths(built: Path, tmp_path: Path, path: str) -> None:
    out = copy(built, tmp_path)

    def change(doc):
        node = next(n for n in doc["nodes"] if n.get("module") == "fc")
        node["module"] = path
        for key in node["params"].values():
            doc["params"][key]["name"] = doc["params"][key]["name"].replace("fc", path, 1)

    edit_graph(out, change)
    refused(out, "graph.json")


@pytest.mark.parametrize("name", ["training", "_parameters", "a..b", ""])
def test_hostile_free_parameter_names(built: Path, tmp_path: Path, name: str) -> None:
    out = copy(built, tmp_path, "free")

    def change(doc):
        node = next(n for n in doc["nodes"] if n.get("module") == "token")
        node["module"] = name
        doc["params"][node["params"][""]]["name"] = name

    edit_graph(out, change)
    refused(out, "graph.json")


@pytest.mark.parametrize("init", ["exec('import os')", "normal(std=-1)", "uniform(a=1, b=0)", "trunc_normal(std=0)",
                                  "constant(value=1e999)", "zeros(", "", "x" * 10000])
def test_junk_initialisers(built: Path, tmp_path: Path, init: str) -> None:
    out = copy(built, tmp_path, "free")
    edit_graph(out, lambda doc: [p.update(init=init) for p in doc["params"].values()])
    refused(out, "graph.json")


@pytest.mark.parametrize("dtype", ["float128", "os.system", "int64", "bool", "", 3])
def test_junk_dtypes(built: Path, tmp_path: Path, dtype) -> None:
    out = copy(built, tmp_path, "free")
    edit_graph(out, lambda doc: [p.update(dtype=dtype) for p in doc["params"].values()])
    refused(out)


@pytest.mark.parametrize("shape", [[10**12, 4], [2**70], [-1, 4], ["N", 4], [0]])
def test_declared_sizes_are_checked_before_allocating(built: Path, tmp_path: Path, shape) -> None:
    """A 2 KB graph.json that declares terabytes is refused from the weights header, without allocating."""
    out = copy(built, tmp_path)

    def change(doc):
        weight = next(p for p in doc["params"].values() if p["name"] == "fc.weight")
        weight["shape"] = shape

    edit_graph(out, change)
    refused(out)


def test_huge_declared_model_in_a_subprocess(tmp_path: Path) -> None:
    """A consistent graph.json declaring 4 TB of parameters, loaded under a 3 GB memory cap: fails fast."""
    spec = "model P() {\n  in x: [N, 7777]\n  token = Parameter((7777,), \"zeros\")\n  fc = Linear(7777, bias=false)\n  out x |> fc + token\n}\n"
    graph = archdsl.compile(spec)
    save_built(graph, archdsl.build(graph), tmp_path / "p")
    text = (tmp_path / "p" / "graph.json").read_text()
    (tmp_path / "p" / "graph.json").write_text(text.replace("7777", str(2**20)))
    code = "import archdsl, sys\ntry:\n  archdsl.load_built(sys.argv[1])\nexcept archdsl.ArchError as e:\n  print(e)\n"
    proc = run_limited(["-c", code, str(tmp_path / "p")], tmp_path, python_args=True)
    assert proc.returncode == 0 and "does not fit" in proc.stdout and "1048576" in proc.stdout, proc.stderr[-2000:]


@pytest.mark.parametrize("dims", [["+".join(["N"] * 100_000)], ["9" * 5000], ["N" * 100_000], [{"a": 1}], [None]])
def test_hostile_dim_expressions(built: Path, tmp_path: Path, dims) -> None:
    out = copy(built, tmp_path)
    edit_graph(out, lambda doc: doc["inputs"]["x"].update(shape=dims + doc["inputs"]["x"]["shape"][1:]))
    refused(out, "graph.json")


@pytest.mark.parametrize("doc", ["", "[]", "null", "{", '{"name": "M"}', "1e999999", "[" * 100_000 + "]" * 100_000,
                                 '{"name": "M", "inputs": {}, "nodes": [], "outputs": {}, "params": {}}'])
def test_not_a_graph(built: Path, tmp_path: Path, doc: str) -> None:
    out = copy(built, tmp_path)
    (out / "graph.json").write_text(doc)
    refused(out, "graph.json")


def test_unknown_op_and_junk_attributes(built: Path, tmp_path: Path) -> None:
    out = copy(built, tmp_path)
    edit_graph(out, lambda doc: doc["nodes"][0]["op"].update(name="os.system"))
    refused(out, "graph.json")
    out = copy(built, tmp_path / "2")
    edit_graph(out, lambda doc: doc["nodes"][0]["op"]["attrs"].update(padding=[10**30, 1]))
    refused(out)


@pytest.mark.parametrize("aliases", ["[]", "null", "[1, 2]", '{"a": ["b"]}', '{"fc.weight": "nope"}', "{", '"x"'])
def test_malformed_alias_metadata(built: Path, tmp_path: Path, aliases: str) -> None:
    out = copy(built, tmp_path)
    tensors = load_file(out / "weights.safetensors")
    save_file(tensors, out / "weights.safetensors", metadata={"archdsl.aliases": aliases})
    refused(out, "weights.safetensors")


@pytest.mark.parametrize("dtype", [torch.int64, torch.bool, torch.float64, torch.float16, torch.uint8])
def test_tensors_of_another_dtype_are_refused(built: Path, tmp_path: Path, dtype: torch.dtype) -> None:
    """An int64 or bool tensor is never silently cast into a float32 parameter."""
    out = copy(built, tmp_path)
    tensors = load_file(out / "weights.safetensors")
    tensors["fc.weight"] = tensors["fc.weight"].to(dtype)
    save_file(tensors, out / "weights.safetensors")
    refused(out, "fc.weight")


@pytest.mark.parametrize("junk", [b"", b"\x00" * 8, b"\xff" * 64, (2**62).to_bytes(8, "little") + b"{}",
                                  (20).to_bytes(8, "little") + b'{"a":{"dtype":"F32"}}'])
def test_junk_weights_files(built: Path, tmp_path: Path, junk: bytes) -> None:
    out = copy(built, tmp_path)
    (out / "weights.safetensors").write_bytes(junk)
    refused(out, "weights.safetensors")


def test_truncated_weights(built: Path, tmp_path: Path) -> None:
    out = copy(built, tmp_path)
    data = (out / "weights.safetensors").read_bytes()
    (out / "weights.safetensors").write_bytes(data[: len(data) - 17])
    refused(out, "weights.safetensors")


def test_extra_and_missing_tensors(built: Path, tmp_path: Path) -> None:
    out = copy(built, tmp_path)
    tensors = load_file(out / "weights.safetensors")
    save_file({**tensors, "evil": torch.zeros(2)}, out / "weights.safetensors")
    refused(out, "evil")
    del tensors["fc.bias"]
    save_file(tensors, out / "weights.safetensors")
    refused(out, "fc.bias")


def test_graph_json_that_is_a_folder_or_fifo(built: Path, tmp_path: Path) -> None:
    out = copy(built, tmp_path)
    (out / "graph.json").unlink()
    (out / "graph.json").mkdir()
    refused(out, "not a built model")


def test_model_py_is_never_run(built: Path, tmp_path: Path) -> None:
    out = copy(built, tmp_path)
    (out / "model.py").write_text("raise SystemExit('model.py was run')\n")
    assert isinstance(load_built(out), torch.nn.Module)


def test_cli_never_prints_a_traceback_for_a_bad_build(tmp_path: Path, capsys) -> None:
    """No command loads a build today, but the message path is the same for `archdsl` users."""
    (tmp_path / "graph.json").write_text("{")
    (tmp_path / "weights.safetensors").write_bytes(b"")
    with pytest.raises(UsageError) as info:
        archdsl.load_built(tmp_path)
    one_paragraph(info.value.render())
    assert cli(capsys, "check", str(tmp_path / "graph.json"))[0] != 0
