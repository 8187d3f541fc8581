"""Registry completeness: every op is declared fully and has a torch lowering."""

from __future__ import annotations

import re

import pydantic
import pytest

from archdsl.backends.torch import rules
from archdsl.backends.torch.registry import RULES
from archdsl.elaborate.builtins import BUILTINS
from archdsl.ir.types import TensorType
from archdsl.ops.base import OpDef, Trait
from archdsl.ops.registry import all_ops, lookup, spellings

OPS = all_ops()
IDS = [op.__name__ for op in OPS]
# words the grammar reserves: an op spelled like one could never be written in a spec
KEYWORDS = {"in", "out", "seq", "reparam", "block", "model", "let", "import", "as", "if", "else", "for", "and", "or",
            "not", "true", "false", "none"}
# attributes for ops whose required attributes have no default, to make a sample instance
REQUIRED = {"out_channels": 4, "kernel_size": 3, "out_features": 4, "num_heads": 2, "dim": 1, "dims": (0, 2, 1, 3),
            "dim0": 1, "dim1": 2, "chunks": 2, "split_size_or_sections": 2, "index": 0, "shape": (2, 5),
            "num_embeddings": 4, "embedding_dim": 3, "fn": "mul"}
SAMPLE_TYPES = [TensorType(shape=(2, 4, 6, 6)), TensorType(shape=(2, 5, 8)), TensorType(shape=(2, 5), dtype="int64")]


def sample(op: type[OpDef]) -> OpDef | None:
    """An instance with defaults plus generic values for required attributes, or None."""
    attrs = {k: REQUIRED[k] for k, f in op.model_fields.items() if f.is_required() and k in REQUIRED}
    try:
        return op(**attrs)
    except pydantic.ValidationError:
        return None


def try_infer(op: OpDef) -> list[TensorType] | None:
    """Output types for the first sample input types the op accepts, or None."""
    for t in SAMPLE_TYPES:
        n = 0 if op.arity == 0 else 2 if op.arity is None else op.arity
        ins = [t] * n
        try:
            return op.resolve(ins).infer(ins)
        except (ValueError, TypeError):
            continue
    return None


@pytest.fixture(scope="module", autouse=True)
def _rules() -> None:
    rules.load()


@pytest.mark.parametrize("op", OPS, ids=IDS)
def test_has_a_torch_lowering(op):
    assert op in RULES, f"{op.__name__} has no torch lowering in backends/torch/rules/"


@pytest.mark.parametrize("op", OPS, ids=IDS)
def test_is_documented_and_well_named(op):
    assert (op.__dict__.get("__doc__") or "").strip(), f"{op.__name__} has no docstring of its own"
    assert "name" in op.__dict__, f"{op.__name__} inherits its IR name"
    assert re.fullmatch(r"[a-z][a-z0-9_]*", op.name), op.name
    assert set(op.positional) <= set(op.model_fields), f"{op.__name__}.positional names unknown attributes"
    assert lookup(op.name) is op and lookup(op.__name__) is op


def test_names_are_unique_and_writable():
    names = [op.name for op in OPS]
    assert len(names) == len(set(names))
    assert len(IDS) == len(set(IDS))
    hidden = [s for s in spellings() if s in BUILTINS or s in KEYWORDS]
    assert not hidden, f"ops spelled like a built-in or keyword cannot be written in a spec: {hidden}"


@pytest.mark.parametrize("op", OPS, ids=IDS)
def test_has_a_shape_rule(op):
    assert op.infer is not OpDef.infer, f"{op.__name__} has no shape rule"
    instance = sample(op)
    if instance is not None and op.__module__.split(".")[-1] in ("activation", "tensor", "shape", "attention",
                                                                 "embed", "linear"):
        assert try_infer(instance), f"{op.__name__} accepts none of the sample inputs"


@pytest.mark.parametrize("op", [op for op in OPS if op.params is not OpDef.params], ids=lambda op: op.__name__)
def test_parameter_owners_can_be_built(op):
    """An op with parameters lowers to a module that owns them, or is a free parameter ('' = its own path)."""
    if RULES[op].module is not None:
        return
    if Trait.BUFFER in op.traits:   # codegen registers the buffer under its path (backends/torch/constants.py)
        return
    assert op.arity == 0, f"{op.__name__} declares parameters but its lowering builds no module"
    instance = sample(op)
    if instance is not None:    # ops with attributes sample() cannot fill are checked by their own tests
        assert "" in instance.params([]), f"{op.__name__} owns parameters but none is named by its own path"
