"""A group element acting on a state_dict: permute every member axis, then scale it."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from archdsl.errors import Diagnostic, UsageError
from archdsl.symmetry.spec import Entry, GroupElement, Seg, SymmetrySpec


def act(spec: SymmetrySpec, state: dict, g: GroupElement, keep=None) -> dict:
    """``g`` acting on ``state`` (see :meth:`SymmetrySpec.apply`); the input is not modified."""
    import torch

    tau = spec._tau(g)
    by_param: dict[str, list[Entry]] = defaultdict(list)
    for e in spec.entries:
        if keep is None or keep(e):
            by_param[e.param].append(e)
    out = dict(state)
    numpy_in = {}
    for param in by_param:
        if param not in state:
            raise UsageError(Diagnostic(f"the state_dict has no '{param}', which the symmetry spec of "
                                        f"{spec.name} acts on", hint="pass the model's full state_dict"))
        value = state[param]
        numpy_in[param] = isinstance(value, np.ndarray)
        out[param] = torch.from_numpy(value) if numpy_in[param] else value
    for param, entries in by_param.items():
        out[param] = _permute(out[param], entries, g, tau)
    permuted = dict(out)              # BatchNorm weights read the running variance before any scaling
    for param, entries in by_param.items():
        out[param] = _scale(out[param], entries, g, permuted)
    for param, was_numpy in numpy_in.items():
        if was_numpy:
            out[param] = out[param].numpy()
    return out


def _permute(t, entries: list[Entry], g: GroupElement, tau: dict[int, int]):
    import torch

    srcs: dict[int, np.ndarray] = {}
    for e in entries:
        if e.index is None and e.axis not in srcs:
            srcs[e.axis] = src_index(e.segs, e.segs, g, tau, t.shape[e.axis])
    for axis, src in srcs.items():
        if not np.array_equal(src, np.arange(len(src))):
            t = t.index_select(axis, torch.from_numpy(src))
    indexed: dict[tuple[int, int], list[Entry]] = defaultdict(list)
    for e in entries:
        if e.index is not None:
            indexed[(e.axis, e.index[0])].append(e)
    for (axis, rows_axis), group in indexed.items():
        group = sorted({_slab(e)[1]: e for e in group}.values(), key=lambda e: _slab(e)[1])
        rows = srcs.get(rows_axis, np.arange(t.shape[rows_axis]))
        out = t.clone()
        for new in group:
            start, stop = _slab(new)[1], _slab(new)[2]
            old = next((e for e in group if _slab(e)[1] <= rows[start] < _slab(e)[2]), None)
            if old is None:                       # left out by ``keep``: the slab's columns stay
                continue
            cols = src_index(old.segs, new.segs, g, tau, t.shape[axis])
            out.narrow(rows_axis, start, stop - start).copy_(
                t.narrow(rows_axis, start, stop - start).index_select(axis, torch.from_numpy(cols)))
        t = out
    return t


def src_index(old: tuple[Seg, ...], new: tuple[Seg, ...], g: GroupElement, tau: dict[int, int],
              size: int) -> np.ndarray:
    """For each position of the new axis, the position of the old axis its value comes from."""
    src = np.arange(size)
    targets: dict[int, list[Seg]] = defaultdict(list)
    for s in new:
        if s.leaf is not None:
            targets[s.leaf].append(s)
    seen: dict[int, int] = defaultdict(int)
    for s in old:
        if s.leaf is None:
            continue
        k = seen[s.leaf]
        seen[s.leaf] += 1
        m = tau.get(s.leaf, s.leaf)
        if m == s.leaf and m not in g.perms and old is new:
            continue
        t = targets[m][k]
        pi = g.perms.get(m, np.arange(s.length))
        reps = np.arange(s.rep)[None, :]
        old_pos = s.start + np.arange(s.length)[:, None] * s.rep + reps
        new_pos = t.start + pi[:, None] * s.rep + reps
        src[new_pos.ravel()] = old_pos.ravel()
    return src


def _slab(e: Entry) -> tuple[int, int, int]:
    """(axis, start, stop) of an entry that covers a slab of its parameter."""
    if e.index is None:
        raise ValueError(f"{e.param} covers its whole parameter, not a slab")
    return e.index


def _factor(e: Entry, g: GroupElement, state: dict, size: int) -> np.ndarray | None:
    """Per-position scaling factors of one member axis (None: all ones)."""
    f = None
    for s in e.segs:
        scale = g.scales.get((s.token, s.leaf)) if s.leaf is not None and s.token is not None else None
        if scale is None or scale.ndim == 2:          # matrices: see _mix
            continue
        if e.role and e.role[0] == "bn":
            var = state[e.role[1]].detach().double().cpu().numpy()[s.start:s.start + s.length]
            eps = e.role[2]
            values = np.sqrt(scale ** 2 * var + eps) / (scale * np.sqrt(var + eps))
        elif e.exponent:
            values = scale ** e.exponent
        else:
            continue
        if f is None:
            f = np.ones(size)
        f[s.start:s.start + s.length * s.rep] *= np.repeat(values, s.rep)
    return f


def _mix(t, e: Entry, g: GroupElement):
    """Invertible matrices on GL links: rows of creating weights by M, columns of consuming ones by M^-T."""
    import torch

    for s in e.segs:
        m = g.scales.get((s.token, s.leaf)) if s.leaf is not None and s.token is not None else None
        if m is None or m.ndim != 2 or e.exponent not in (1, -1):
            continue
        m = m if e.exponent == 1 else np.linalg.inv(m).T
        view = t if e.index is None else t.narrow(e.index[0], e.index[1], e.index[2] - e.index[1])
        part = view.narrow(e.axis, s.start, s.length * s.rep).movedim(e.axis, 0)
        shape = part.shape
        mixed = torch.as_tensor(m, dtype=torch.float64) @ part.double().reshape(s.length, -1)
        part.copy_(mixed.reshape(shape).to(t.dtype))


def _scale(t, entries: list[Entry], g: GroupElement, state: dict):
    import torch

    if not g.scales:
        return t
    if any(m.ndim == 2 for m in g.scales.values()):
        t = t.clone()
        for e in entries:
            _mix(t, e, g)
    first = True
    for e in entries:
        f = _factor(e, g, state, t.shape[e.axis])
        if f is None:
            continue
        if first:
            t, first = t.clone(), False
        shape = [1] * t.dim()
        shape[e.axis] = -1
        ft = torch.as_tensor(f, dtype=torch.float64).reshape(shape)
        view = t if e.index is None else t.narrow(e.index[0], e.index[1], e.index[2] - e.index[1])
        view.copy_((view.double() * ft).to(t.dtype))
    return t
