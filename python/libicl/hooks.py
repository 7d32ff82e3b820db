"""Named points of the forward pass: caches, Python hooks, captures and the
library's interventions.

Point names are libicl's (include/icl/points.h): a TransformerLens-style
alias with its layer, "blocks.1.hook_resid_post", "blocks.0.attn.hook_z",
"hook_embed", or a canonical name ("resid_post"), which for a per-layer
point means every layer. Shapes: (B,T,width) for most points;
(B,T,NH,HS) for q, k, v and head_out (hook_z); (B,NH,T,T) for attention
scores and probabilities (hook_pattern).
"""
import ctypes

import numpy as np

from . import _lib
from ._lib import C, ERR_INVALID_ARG, ERR_SHAPE, ERR_UNSUPPORTED, Error, check, cstr
from ._util import as_float, ptr, text
from .model import _int

_SQUARE = (_lib.POINT_ATTN_SCORES, _lib.POINT_ATTN_PROBS)
_SPLIT = (_lib.POINT_Q, _lib.POINT_K, _lib.POINT_V, _lib.POINT_HEAD_OUT)


def parse_point(name):
    """(point id, layer) of a point name; layer -1 for canonical names and
    points outside blocks."""
    p, layer = ctypes.c_int(), ctypes.c_int()
    check(C.point_parse(cstr(name, "point name"), ctypes.byref(p), ctypes.byref(layer)), "point")
    return p.value, layer.value


def point_name(point, layer=-1):
    """The alias of (point, layer), e.g. "blocks.0.hook_resid_post"."""
    alias = text(C.point_alias(point))
    if alias is None:
        raise Error(ERR_INVALID_ARG, "unknown point %r" % point)
    return alias.replace("{l}", str(layer)) if C.point_is_per_layer(point) else alias


def point_names(n_layer):
    """Every (alias, point, layer) of a model of n_layer blocks, in forward order."""
    out = []
    for p in range(_lib.POINT_COUNT):
        if C.point_is_per_layer(p):
            out.extend((point_name(p, l), p, l) for l in range(n_layer))
        else:
            out.append((point_name(p), p, -1))
    return sorted(out, key=lambda e: (e[2] if e[2] >= 0 else (-1 if e[1] == 0 else n_layer), e[1]))


def _shape(cfg, point, B, T, width):
    NH = cfg.n_head
    if point in _SQUARE:
        return (B, NH, T, T)
    if point in _SPLIT:
        return (B, T, NH, cfg.d_model // NH)
    return (B, T, width)


def _select(model, names):
    L = C.model_config(model.ptr).contents.n_layer
    allp = point_names(L)
    if names is None:
        return allp
    if isinstance(names, str):
        names = [names]
    out = []
    for n in names:
        p, layer = parse_point(n)
        if C.point_is_per_layer(p) and layer >= L:
            raise Error(ERR_INVALID_ARG, "%s: layer %d outside [0, %d)" % (n, layer, L))
        out.extend(e for e in allp if e[1] == p and (layer < 0 or e[2] == layer) and e not in out)
    return out


def run_with_cache(model, x, names=None, **batch):
    """(outputs, cache): the forward pass of x (a PromptBatch or tokens (B,T) /
    inputs) and a dict alias -> numpy copy of every point (or of `names`)."""
    return run_with_cache_after(model, model.forward(x, **batch), names)


class HookPoint:
    """What a Python hook is told: the point's alias, id and layer."""

    def __init__(self, name, point, layer):
        self.name, self.point, self.layer = name, point, layer

    def __repr__(self):
        return "HookPoint(%r)" % self.name


def _view(cfg, v):
    """A writable numpy view of a point's tensor (host memory, CPU backend)."""
    B, T, W, S, NH = v.B, v.T, v.width, v.row_stride, v.n_head
    f = 4
    if v.point in _SQUARE:
        n = B * NH * T * T
        base = np.ctypeslib.as_array(v.data, shape=(n,))
        return base.reshape(B, NH, T, T)
    n = (B * T - 1) * S + W
    base = np.ctypeslib.as_array(v.data, shape=(n,))
    if v.point in _SPLIT:
        HS = cfg.d_model // NH
        return np.lib.stride_tricks.as_strided(base, (B, T, NH, HS), (T * S * f, S * f, HS * f, f))
    return np.lib.stride_tricks.as_strided(base, (B, T, W), (T * S * f, S * f, f))


def _run_hooked(model, hooks, run):
    """Install a C hook that hands each matching point to its Python
    functions, run `run()`, remove the hook, re-raise a hook's exception."""
    if C.model_backend(model.ptr) != _lib.BACKEND_CPU:
        raise Error(ERR_UNSUPPORTED, "Python hooks read host memory: they need a CPU-backend model")
    cfg = C.model_config(model.ptr).contents
    table = {}
    if isinstance(hooks, dict):
        hooks = list(hooks.items())
    for item in hooks:
        if not (isinstance(item, tuple) and len(item) == 2 and callable(item[1])):
            raise Error(ERR_INVALID_ARG, "hooks must be (point name, function) pairs")
        for alias, p, layer in _select(model, item[0]):
            table.setdefault((p, layer), []).append((alias, item[1]))
    state = {"error": None}

    def hook(user, m, view_p):
        v = view_p.contents
        fns = table.get((v.point, v.layer))
        if not fns:
            return _lib.OK
        try:
            arr = _view(cfg, v)
            for alias, fn in fns:
                ret = fn(arr, HookPoint(alias, v.point, v.layer))
                if ret is not None and ret is not arr:
                    r = np.asarray(ret)
                    if r.shape != arr.shape:
                        raise Error(ERR_SHAPE, "hook at %s returned shape %s, the point has %s"
                                    % (alias, r.shape, arr.shape))
                    arr[...] = r
            return _lib.OK
        except BaseException as e:  # noqa: B902 - re-raised below
            state["error"] = e
            return ERR_INVALID_ARG

    cb = _lib.HOOK_FN(hook)
    C.model_set_hook(model.ptr, cb, None)
    try:
        out = run()
    except Error:
        if state["error"] is not None:
            raise state["error"]
        raise
    finally:
        C.model_set_hook(model.ptr, _lib.HOOK_FN(), None)
    return out


def run_with_hooks(model, x, hooks, interventions=(), cache=None, **batch):
    """Outputs of a forward pass in which each hook (point name, fn) sees its
    point: fn(tensor, hook) may read the numpy view, change it in place or
    return a replacement array. The view is only valid during the call (copy
    what you keep). The library's interventions apply too, after the Python
    hooks of the same point. cache: point names to return as (outputs, cache)."""
    def run():
        if interventions:
            out = forward_with(model, x, interventions, **batch)
        else:
            out = model.forward(x, **batch)
        if cache is None:
            return out
        return run_with_cache_after(model, out, cache)
    return _run_hooked(model, hooks, run)


def run_with_cache_after(model, out, names):
    cfg = C.model_config(model.ptr).contents
    cache = {}
    for alias, p, layer in _select(model, names):
        v = _lib.PointView()
        check(C.model_point(model.ptr, p, layer, ctypes.byref(v)), alias)
        a = np.empty(_shape(cfg, p, v.B, v.T, v.width), np.float32)
        check(C.model_point_copy(model.ptr, p, layer, ptr(a), a.size), alias)
        cache[alias] = a
    return out, cache


# ---- positions ----


def _role(r):
    if isinstance(r, str):
        if r not in _lib.ROLE_NAMES:
            raise Error(ERR_INVALID_ARG, "unknown role %r (roles: %s)" % (r, ", ".join(_lib.ROLE_NAMES)))
        return _lib.ROLE_NAMES.index(r)
    return _int(r, "role", 0)


def positions(spec="all"):
    """An icl_positions selector: "all", "last", an int index (negative from
    the end), a role name ("query_sep"), or (role, nth)."""
    if isinstance(spec, _lib.Positions):
        return spec
    if spec == "all":
        return _lib.Positions(_lib.POS_ALL, 0, 0, 0)
    if spec == "last":
        return _lib.Positions(_lib.POS_LAST, 0, 0, 0)
    if isinstance(spec, (int, np.integer)) and not isinstance(spec, bool):
        return _lib.Positions(_lib.POS_INDEX, _int(spec, "position"), 0, 0)
    if isinstance(spec, str):
        return _lib.Positions(_lib.POS_ROLE, 0, _role(spec), 0)
    if isinstance(spec, tuple) and len(spec) == 2:
        return _lib.Positions(_lib.POS_ROLE_NTH, 0, _role(spec[0]), _int(spec[1], "nth"))
    raise Error(ERR_INVALID_ARG, "positions must be \"all\", \"last\", an index, a role or (role, nth); got %r"
                % (spec,))


# ---- interventions ----


class Intervention:
    """One of the library's interventions (icl_intervention) at a named point.
    op: set, add, scale, zero, mean (vector = a precomputed mean), resample
    (source_row of this batch, or `source` (B,T,width) of another run)."""

    def __init__(self, point, op, head=-1, row=-1, positions="all", vector=None, alpha=1.0, source_row=-1,
                 source=None):
        if op not in _lib.IV_OPS:
            raise Error(ERR_INVALID_ARG, "op must be one of %s, got %r" % (", ".join(_lib.IV_OPS), op))
        self.point, self.op, self.head, self.row = point, op, head, row
        self.positions, self.vector, self.alpha = positions, vector, alpha
        self.source_row, self.source = source_row, source

    def _struct(self, model, B, T, keep):
        p, layer = parse_point(self.point)
        if C.point_is_per_layer(p) and layer < 0:
            raise Error(ERR_INVALID_ARG, "intervention at %s: name the layer (blocks.<l>....)" % self.point)
        s = C.intervention_make(p, layer, _lib.IV_OPS[self.op])
        s.head = _int(self.head, "head", -1)
        s.row = _int(self.row, "row", -1)
        s.pos = positions(self.positions)
        s.alpha = float(self.alpha)
        s.source_row = _int(self.source_row, "source_row", -1)
        width = ctypes.c_int()
        check(C.point_width(model.ptr, p, s.head, ctypes.byref(width)), self.point)
        if self.vector is not None:
            vec = as_float(self.vector, "vector", shape=(width.value,))
            keep.append(vec)
            s.vector = ptr(vec)
        if self.source is not None:
            src = as_float(self.source, "source", shape=(B, T, width.value))
            keep.append(src)
            s.source = ptr(src)
        return s


def forward_with(model, x, interventions, return_loss=False, **batch):
    """Outputs of a forward pass with the library's interventions applied
    (icl_forward_with). Role selectors need a PromptBatch (its roles label
    the positions)."""
    if isinstance(interventions, Intervention):
        interventions = [interventions]
    b, labels, keep = model._batch(x, **batch)
    n = len(interventions)
    arr = (_lib.Intervention * max(1, n))()
    for i, iv in enumerate(interventions):
        if not isinstance(iv, Intervention):
            raise Error(ERR_INVALID_ARG, "interventions must be libicl.Intervention objects")
        arr[i] = iv._struct(model, b.B, b.T, keep)
    loss = ctypes.c_float(float("nan"))
    lab = ctypes.byref(labels) if labels is not None else None
    check(C.forward_with(model.ptr, ctypes.byref(b), lab, arr, n, ctypes.byref(loss)), "forward_with")
    out = model._outputs(b.B, b.T)
    return (out, loss.value) if return_loss else out


# ---- captures (the C capture API) ----


def capture(model, x, specs):
    """Forward x and read points with the library's capture plan: specs is a
    list of point names or (name, head, positions) tuples. Returns a list of
    {name, point, layer, head, width, data (n,width), rows (n), positions (n)}."""
    plan = ctypes.c_void_p()
    check(C.capture_plan_create(ctypes.byref(plan)), "capture plan")
    cs = _lib.CaptureSet()
    try:
        for spec in specs:
            name, head, pos = (spec, -1, "all") if isinstance(spec, str) else (tuple(spec) + (-1, "all"))[:3]
            p, layer = parse_point(name)
            idx = ctypes.c_int()
            check(C.capture_plan_add(plan, p, layer, _int(head, "head", -1), positions(pos), ctypes.byref(idx)),
                  name)
        b, labels, keep = model._batch(x)
        check(C.model_forward(model.ptr, ctypes.byref(b), None), "forward")
        lab = ctypes.byref(labels) if labels is not None else None
        check(C.capture_collect(plan, model.ptr, lab, ctypes.byref(cs)), "capture")
        out = []
        from ._util import copy_out
        for i in range(cs.n):
            c = cs.items[i]
            out.append({"name": point_name(c.point, c.layer), "point": c.point, "layer": c.layer, "head": c.head,
                        "width": c.width, "data": copy_out(c.data, (c.n, c.width), np.float32),
                        "rows": copy_out(c.rows, (c.n,), np.int32),
                        "positions": copy_out(c.positions, (c.n,), np.int32)})
        return out
    finally:
        C.capture_set_free(ctypes.byref(cs))
        C.capture_plan_free(plan)


__all__ = ["Intervention", "HookPoint", "capture", "forward_with", "parse_point", "point_name", "point_names",
           "positions", "run_with_cache", "run_with_hooks"]
