"""The op registry's spelling index (which family defines each spelling) agrees with the op classes, and naming
an op imports its own family only."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import archdsl.ops
from archdsl.ops.registry import FAMILY_NAMES, SPELLINGS, all_ops, lookup, op_class, spellings

NOT_FAMILIES = {"base", "registry"}        # modules of archdsl.ops that declare no ops


def test_every_op_module_is_a_listed_family() -> None:
    modules = {m.name for m in pkgutil.iter_modules(archdsl.ops.__path__)} - NOT_FAMILIES
    assert set(FAMILY_NAMES) == modules


def test_spellings_index_matches_the_op_classes() -> None:
    real: dict[str, list[str]] = {name: [] for name in FAMILY_NAMES}
    for op in all_ops():
        real[op.__module__.rpartition(".")[2]].extend(dict.fromkeys((op.__name__, op.name)))
    expected = {family: tuple(names) for family, names in real.items()}
    assert SPELLINGS == expected, f"archdsl/ops/registry.py SPELLINGS should read:\n{expected!r}"
    for family, names in SPELLINGS.items():
        for name in names:
            assert lookup(name) is op_class(name) and lookup(name).__module__ == f"archdsl.ops.{family}"
    assert len(spellings()) == len(set(spellings())) == sum(map(len, SPELLINGS.values()))
    assert lookup("NoSuchOp") is None and lookup("") is None


def test_compiling_imports_only_the_families_a_spec_names() -> None:
    code = ("import sys, archdsl; archdsl.compile('resnet50'); "
            "print(' '.join(sorted(m for m in sys.modules if m.startswith('archdsl.ops.'))))")
    loaded = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
                 .stdout.split())
    assert {"archdsl.ops.conv", "archdsl.ops.norm", "archdsl.ops.pool"} <= loaded
    assert not loaded & {"archdsl.ops.attention", "archdsl.ops.linear_attention", "archdsl.ops.resample"}
