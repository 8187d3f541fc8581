"""Weights: an immutable name -> tensor mapping checked against a Graph's parameter declarations.

Passes map weights along with the graph (weight mode). torch is imported lazily: the IR stays importable
without it, and a Weights object only ever holds tensors that the caller already has.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from archdsl.errors import Diagnostic, UsageError
from archdsl.ir.graph import Graph

if TYPE_CHECKING:
    import torch


class Weights(Mapping[str, "torch.Tensor"]):
    """Parameter and buffer tensors by their full (state_dict) names; immutable, ``|`` and ``without`` copy."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, torch.Tensor] | None = None):
        self._data = dict(data or {})

    def __getitem__(self, name: str) -> torch.Tensor:
        return self._data[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"Weights({len(self)} tensors)"

    def __or__(self, other: Mapping[str, torch.Tensor]) -> Weights:
        return Weights({**self._data, **other})

    def without(self, *names: str) -> Weights:
        """A copy without ``names``."""
        return Weights({k: v for k, v in self._data.items() if k not in names})

    def only(self, graph: Graph) -> Weights:
        """The tensors ``graph`` declares (drops those of removed layers)."""
        return Weights({k: v for k, v in self._data.items() if k in graph.params})

    def state_dict(self) -> dict[str, torch.Tensor]:
        """A plain dict (for ``load_state_dict``)."""
        return dict(self._data)

    @classmethod
    def of(cls, source: Any, graph: Graph | None = None) -> Weights:
        """Weights from a state_dict, an ``nn.Module`` (its state_dict) or Weights; checked against ``graph``."""
        if isinstance(source, Weights):
            weights = source
        elif hasattr(source, "state_dict") and callable(source.state_dict):
            weights = cls(source.state_dict())
        elif isinstance(source, Mapping):
            weights = cls(source)
        else:
            raise UsageError(Diagnostic(f"weights must be a state_dict, an nn.Module or Weights, "
                                        f"got {type(source).__name__}"))
        if graph is not None:
            weights.check(graph)
        return weights

    def check(self, graph: Graph) -> None:
        """Raise UsageError unless names, shapes and dtypes match ``graph``'s declarations exactly."""
        import torch

        from archdsl.ir.ties import tied_names

        missing = sorted(set(graph.params) - set(self._data))
        extra = sorted(set(self._data) - set(graph.params) - set(tied_names(graph)))   # tied: the same tensor
        problems = []
        if missing:
            problems.append(f"missing {_few(missing)}")
        if extra:
            problems.append(f"unexpected {_few(extra)}")
        for name, param in graph.params.items():
            t = self._data.get(name)
            if t is None:
                continue
            if not isinstance(t, torch.Tensor):
                problems.append(f"{name} is a {type(t).__name__}, not a tensor")
            elif tuple(t.shape) != tuple(int(d) for d in param.shape):
                problems.append(f"{name} has shape {list(t.shape)}, the graph declares {list(param.shape)}")
            elif not t.is_floating_point() and param.dtype.startswith(("float", "bfloat")):
                problems.append(f"{name} is {str(t.dtype).removeprefix('torch.')}, the graph declares {param.dtype}")
        if problems:
            raise UsageError(Diagnostic(f"the weights do not fit model {graph.name}: " + "; ".join(problems[:6]) +
                                        ("; ..." if len(problems) > 6 else ""),
                                        hint="pass the state_dict of a module built from the same spec"))


def _few(names: list[str]) -> str:
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
