"""``fold-bn``: an eval-mode per-channel affine op (BatchNorm, LayerScale, x * c) folded into the adjacent weighted op.

Rows (each checked by :func:`_after` / :func:`_before`):
    # bn(conv(x))   -> conv'(x)   W' = W * s along the weight's "out" axis (group- and layout-aware), b' = b*s + t
    # conv(bn(x))   -> conv'(x)   W' = W * s along "in"; b' = b + sum(W * t) -- only without zero padding
The folded layer keeps the weighted op's name, or takes the name of the container holding exactly the two
(timm's ConvNorm); the spec's other names are untouched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from archdsl.ir.graph import Graph, Node
from archdsl.ir.rewrite import GraphEditor
from archdsl.ir.types import TensorType
from archdsl.ir.weights import Weights
from archdsl.ops.base import IN, OUT, Trait
from archdsl.passes.base import Change, Pass, PassResult
from archdsl.passes.layout import along


@dataclass(frozen=True)
class Fold:
    """One fold found in the graph: the weighted op, the affine op, and which side the affine op is on."""

    layer: Node
    affine: Node
    before: bool             # affine op first (conv(bn(x))), else after (bn(conv(x)))


def _affine_axis(node: Node, x: TensorType) -> int | None:
    if not node.op.has(Trait.CHANNEL_AFFINE) or len(node.inputs) != 1:
        return None
    return node.op.eval_affine_axis(x)


def _owns_params_alone(edit: GraphEditor, node: Node) -> bool:
    """The node's parameters are its own (a shared layer applied elsewhere cannot absorb one use's BN)."""
    return all(edit.param_users(full) == [node] for full in node.params.values())


def _weighted(node: Node) -> bool:
    """A weighted op whose weight has tagged "out" and "in" axes (conv, linear, transposed conv)."""
    return "weight" in node.params and node.op.with_bias() is not None


def _after(edit: GraphEditor, bn: Node) -> Fold | None:
    """bn(layer(x)) where layer's only reader is bn and the bn axis is the layer's output channel axis."""
    v = bn.inputs[0]
    layer = edit.producer(v)
    if layer is None or not _weighted(layer) or len(layer.outputs) != 1 or edit.num_uses(v) != 1:
        return None
    x = edit.types[layer.inputs[0]]
    axis = _affine_axis(bn, edit.types[v])
    if axis is None or axis != layer.op.output_channel_axis(x) or not _owns_params_alone(edit, layer):
        return None
    return Fold(layer, bn, before=False)


def _before(edit: GraphEditor, bn: Node) -> Fold | None:
    """layer(bn(x)) where bn's only reader is layer, on its input channel axis, and the shift survives padding."""
    v = bn.outputs[0]
    readers = edit.users(v)
    if len(readers) != 1 or edit.num_uses(v) != 1 or edit.is_output(v):
        return None
    layer = readers[0]
    if not _weighted(layer) or len(layer.inputs) != 1 or not _owns_params_alone(edit, layer):
        return None
    x = edit.types[v]
    axis = _affine_axis(bn, edit.types[bn.inputs[0]])
    if axis is None or axis != layer.op.input_channel_axis(x) or (x.rank > 2 and axis != 1):
        return None
    form = layer.op.conv_form(x)
    if form is None and x.rank != 2:
        return None                      # a linear layer over [N, T, C] with the affine op on T: not this row
    if form is not None and form.mode == "zeros" and any(map(any, form.pads)):
        return None                      # zero padding does not carry the shift: the borders would change
    return Fold(layer, bn, before=True)


def _folded_name(edit: GraphEditor, fold: Fold) -> str:
    """The container's name when it holds exactly the two layers and nothing else (timm's ConvNorm), else the
    layer's own name."""
    own = fold.layer.module or ""
    parent, _, _ = own.rpartition(".")
    bn_parent = (fold.affine.module or "").rpartition(".")[0]
    if not parent or parent != bn_parent:
        return own
    inside = [n for n in edit.nodes if _under(n.module or ".".join(n.scope), parent)]
    return parent if {n.name for n in inside} == {fold.layer.name, fold.affine.name} else own


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + ".")


@dataclass(frozen=True)
class FoldBatchNorm(Pass):
    """Fold eval BatchNorm (and other per-channel affine ops) into the neighbouring conv or linear layer."""

    name: ClassVar = "fold-bn"
    summary: ClassVar = "fold eval-mode BatchNorm / per-channel scales into the adjacent convolution or linear layer"
    preconditions: ClassVar = ("eval mode; the layer's output (or the BN's) has no other reader and its parameters are "
                               "not shared; BN before a layer only on its input channel axis and without zero "
                               "padding (the shift would miss the border)")

    def apply(self, graph: Graph, weights: Weights | None = None) -> PassResult:
        self.check_mode(graph)
        edit = GraphEditor(graph)
        report: list[Change] = []
        new_weights = dict(weights) if weights is not None else None
        for node in graph.nodes:
            current = edit.node(node.name)
            if current is None or not current.op.has(Trait.CHANNEL_AFFINE) or current.op.has(Trait.EVAL_IDENTITY):
                continue
            fold = _after(edit, current) or _before(edit, current)
            if fold is not None:
                report.append(self._fold(edit, fold, new_weights))
        if not report:
            return PassResult(graph, weights, False)
        new = edit.finish()
        return PassResult(new, Weights(new_weights).only(new) if new_weights is not None else None, True,
                          tuple(report))

    def _fold(self, edit: GraphEditor, fold: Fold, weights: dict | None) -> Change:
        layer, bn = fold.layer, fold.affine
        x = edit.types[bn.inputs[0]]
        module = _folded_name(edit, fold)
        source = bn.inputs[0] if fold.before else layer.inputs[0]
        result = layer.outputs[0] if fold.before else bn.outputs[0]
        tensors = self._weights(edit, fold, weights, x) if weights is not None else {}
        biased = layer.op.with_bias()
        if biased is None:
            raise TypeError(f"{layer.op.name} has no form with a bias; a fold needs one")
        edit.remove(layer, bn)
        new = edit.add_node(biased, [source], module=module, scope=layer.scope, span=layer.span,
                            tags=layer.tags)
        edit.replace_uses(result, new.outputs[0])
        if weights is not None:
            for full in (*layer.params.values(), *bn.params.values()):
                weights.pop(full, None)
            for local, full in new.params.items():
                weights[full] = tensors[local]
        return Change(self.name, ".".join(layer.scope), (layer.module or layer.name, bn.module or bn.name), module,
                      "before" if fold.before else "", layer.span)

    def _weights(self, edit: GraphEditor, fold: Fold, weights: dict, x: TensorType) -> dict:
        """The folded layer's weight and bias in the weight's dtype.

        Scale, shift and bias are computed in float64; the weight is multiplied by the scale rounded to its own
        dtype (one rounding per element, as a float64 product rounded back would give, without converting
        every weight to float64). A shift folded through the weight (BN before the layer) sums in float64.
        """
        import torch

        layer, bn = fold.layer, fold.affine
        own = {local: weights[full].detach() for local, full in layer.params.items()}
        axis, scale, shift = bn.op.eval_affine({k: weights[f].detach().double() for k, f in bn.params.items()}, x)
        n = int(x.shape[axis])
        scale, shift = _vector(scale, n, 1.0), _vector(shift, n, 0.0)
        w, dtype = own["weight"], own["weight"].dtype
        param = edit.params[layer.params["weight"]]
        out_axis = layer.op.output_channel_axis(edit.types[layer.inputs[0]])
        if out_axis is None:
            raise TypeError(f"{layer.op.name} names no output channel axis; a fold needs one")
        channels = int(edit.types[layer.outputs[0]].shape[out_axis])
        bias = own["bias"].double() if "bias" in own else torch.zeros(channels, dtype=torch.float64)
        if fold.before:                    # W (s x + t) + b = (W s) x + (b + W t)
            weight = w * along(param, IN, scale).to(dtype)
            out = param.axis_of(OUT)
            carried = w.double() * along(param, IN, shift)
            bias = bias + carried.sum(dim=tuple(i for i in range(w.dim()) if i != out))
        else:                              # s (W x + b) + t = (s W) x + (s b + t)
            weight = w * along(param, OUT, scale).to(dtype)
            bias = bias * scale + shift
        return {"weight": weight, "bias": bias.to(dtype)}


def _vector(value, n: int, default: float):
    """A float64 vector of length ``n`` from a tensor, a float or None."""
    import torch

    if value is None:
        return torch.full((n,), default, dtype=torch.float64)
    return torch.as_tensor(value, dtype=torch.float64).expand(n).clone()
