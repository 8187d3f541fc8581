"""The YAML front end under the same rules: data only, bounded, located."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.hostile._hostile import cli, one_paragraph

HEAD = "models:\n  M:\n    body:\n      - in: {x: '[N, 3]'}\n"
HOSTILE = {
    "python-tag": "!!python/object/apply:os.system [\"touch PWNED\"]\n",
    "deep-flow": "models: " + "[" * 3000 + "]" * 3000 + "\n",
    "deep-map": "a: " + "{b: " * 3000 + "1" + "}" * 3000 + "\n",
    "undefined-alias": "a: *nope\n",
    "alias-bomb": "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"a{i}: &a{i} [{', '.join([f'*a{i - 1}' if i > 1 else '*a'] * 9)}]\n" for i in range(1, 9)),
    "long-expression": HEAD + "      - out: x" + " + x" * 2000 + "\n",
    "clash": HEAD + "      - training: Linear(4)\n      - out: x |> training\n",
    "huge-layer": "models:\n  M:\n    body:\n      - in: {x: '[N, 1000000]'}\n      - fc: Linear(1000000)\n"
                  "      - out: x |> fc\n",
    "binary": "\x00\x01\x02",
    "not-a-mapping": "- 1\n- 2\n",
    "import-outside": "imports: ['/proc/version']\n" + HEAD + "      - out: x\n",
}


@pytest.mark.parametrize("name", list(HOSTILE))
@pytest.mark.parametrize("command", [["check"], ["fmt", "--to", "arch"], ["build", "-o", "OUT"]], ids=lambda c: c[0])
def test_hostile_yaml(here: Path, capsys, name: str, command: list[str]) -> None:
    (here / "h.yaml").write_text(HOSTILE[name])
    code, out, err = cli(capsys, command[0], "h.yaml", *command[1:])
    if code == 0:       # fmt may print a spec that only elaboration would refuse (names, sizes, imports)
        assert command[0] == "fmt" and name in ("clash", "huge-layer", "import-outside", "long-expression"), out
        return
    assert code in (1, 2), err
    one_paragraph(err)
    assert not (here / "PWNED").exists() and not (here / "OUT").exists()
    if code == 1:
        assert err.startswith("h.yaml:"), err
