"""Models, checkpoints, optimizers and training."""
import ctypes
import sys
import time

import numpy as np

from . import _lib
from ._lib import C, ERR_INVALID_ARG, ERR_SHAPE, Error, check, cstr
from ._util import Handle, as_float, as_int32, ptr, text

GROUPS = {"embed": 0, "position": 1, "attn": 2, "mlp": 3, "norm": 4, "final_norm": 5, "head": 6}


def _backend(name):
    if isinstance(name, int):
        return name
    kind = ctypes.c_int()
    check(C.backend_parse(cstr(name, "backend"), ctypes.byref(kind)), "backend")
    return kind.value


def backend_available(name="cuda"):
    """True if models can be created on this backend now ("cpu" or "cuda")."""
    return bool(C.backend_available(_backend(name)))


class Rng:
    """A Philox stream (icl_rng): `Rng(seed, name)`, or `split(index)` of another."""

    def __init__(self, seed=1, name="data"):
        self._s = _lib.Rng()
        C.rng_init(ctypes.byref(self._s), _u64(seed, "seed"), cstr(name, "stream name"))

    def split(self, index):
        child = Rng.__new__(Rng)
        child._s = _lib.Rng()
        C.rng_split(ctypes.byref(child._s), ctypes.byref(self._s), _u64(index, "index"))
        return child


def _u64(x, what):
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)) or not 0 <= int(x) < 2**64:
        raise Error(ERR_INVALID_ARG, "%s must be an integer in [0, 2^64), got %r" % (what, x))
    return int(x)


def _int(x, what, lo=None):
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)) or not -2**31 <= int(x) < 2**31:
        raise Error(ERR_INVALID_ARG, "%s must be an integer, got %r" % (what, x))
    if lo is not None and x < lo:
        raise Error(ERR_INVALID_ARG, "%s must be >= %d, got %d" % (what, lo, x))
    return int(x)


class ModelConfig:
    """icl_config as keyword fields; unspecified fields take icl_config_default()'s
    values. mode is "token" or "vector"."""

    _fields = [f for f, _ in _lib.Config._fields_]

    def __init__(self, **fields):
        object.__setattr__(self, "_s", C.config_default())
        for k, v in fields.items():
            setattr(self, k, v)

    @classmethod
    def _from_struct(cls, s):
        c = cls()
        ctypes.memmove(ctypes.byref(c._s), ctypes.byref(s), ctypes.sizeof(s))
        return c

    def __getattr__(self, k):
        if k == "mode":
            return "token" if self._s.mode == _lib.MODE_TOKEN else "vector"
        if k in self._fields:
            return getattr(self._s, k)
        raise AttributeError(k)

    def __setattr__(self, k, v):
        if k == "mode":
            v = {"token": _lib.MODE_TOKEN, "vector": _lib.MODE_VECTOR}.get(v, v)
            if v not in (0, 1):
                raise Error(ERR_INVALID_ARG, "mode must be \"token\" or \"vector\"")
        elif k not in self._fields:
            raise Error(ERR_INVALID_ARG, "icl_config has no field %r (fields: %s)" % (k, ", ".join(self._fields)))
        if k == "init_std":
            v = float(v)
        elif k != "mode":
            v = _int(v, k)
        setattr(self._s, k, v)

    def validate(self):
        check(C.config_validate(ctypes.byref(self._s)), "config")

    @property
    def num_params(self):
        self.validate()
        return int(C.config_num_params(ctypes.byref(self._s)))

    def to_dict(self):
        return {k: getattr(self, k) for k in self._fields}

    def __repr__(self):
        return "ModelConfig(%s)" % ", ".join("%s=%r" % kv for kv in self.to_dict().items())


class Model(Handle):
    """An icl_model. `Model(config, seed)` creates one; `Model.load(path)` reads
    a checkpoint; `Model.for_family(family, ...)` sizes a config for a task
    family the way `icl train --task` does."""

    _kind = "model"

    def __init__(self, config=None, seed=1, backend="cpu"):
        if config is None:
            config = ModelConfig()
        if isinstance(config, dict):
            config = ModelConfig(**config)
        if not isinstance(config, ModelConfig):
            raise Error(ERR_INVALID_ARG, "config must be a ModelConfig or a dict")
        p = ctypes.c_void_p()
        check(C.model_create(ctypes.byref(p), ctypes.byref(config._s), _backend(backend), _u64(seed, "seed")),
              "model")
        self._init(p)

    def _init(self, p):
        self._children = []  # [ptr, free] slots of optimizers and lenses, freed before the model
        self._set(p.value)
        self.meta = {}

    @classmethod
    def load(cls, path, backend="cpu"):
        """A model from a safetensors checkpoint; `meta` holds its "user.task" if any."""
        p = ctypes.c_void_p()
        check(C.checkpoint_load_model(cstr(path, "path"), _backend(backend), ctypes.byref(p)), str(path))
        m = cls.__new__(cls)
        m._init(p)
        task = read_meta(path, "user.task", default=None)
        if task:
            m.meta["user.task"] = task
        return m

    @classmethod
    def for_family(cls, family, seed=1, n_examples=-1, backend="cpu", **config):
        """ModelConfig(**config) with the family's mode and vocabulary (or
        widths), ctx raised to fit its prompts of n_examples examples."""
        cfg = ModelConfig(**config)
        check(C.task_family_fill_config(family.ptr, ctypes.byref(cfg._s)), "task family")
        n = family.default_examples if n_examples < 0 else n_examples
        cfg.ctx = max(cfg.ctx, family.prompt_len(n))
        return cls(cfg, seed, backend)

    def _free(self, p):
        for slot in self._children:
            q, slot[0] = slot[0], None
            if q is not None:
                slot[1](q)
        C.model_free(p)

    # ---- description ----

    @property
    def config(self):
        return ModelConfig._from_struct(C.model_config(self.ptr).contents)

    @property
    def backend(self):
        return text(C.backend_name(C.model_backend(self.ptr)))

    @property
    def num_params(self):
        return int(C.model_num_params(self.ptr))

    def tensors(self):
        """[{name, shape, offset, numel, group, layer, decay}] in parameter order."""
        out = []
        for i in range(C.model_num_tensors(self.ptr)):
            t = C.model_tensor(self.ptr, i).contents
            out.append({"name": text(t.name), "shape": tuple(t.shape[:t.ndim]), "offset": t.offset,
                        "numel": t.numel, "group": [g for g, v in GROUPS.items() if v == t.group][0],
                        "layer": t.layer, "decay": bool(t.decay)})
        return out

    def params(self):
        """Every parameter, (num_params,) float32 in tensor order."""
        out = np.empty(self.num_params, np.float32)
        check(C.model_get_params(self.ptr, ptr(out), out.size), "params")
        return out

    def state_dict(self):
        flat = self.params()
        return {t["name"]: flat[t["offset"]:t["offset"] + t["numel"]].reshape(t["shape"]) for t in self.tensors()}

    def set_params(self, values):
        a = as_float(values, "params", shape=(self.num_params,))
        check(C.model_set_params(self.ptr, ptr(a), a.size), "set_params")

    def grads(self):
        out = np.empty(self.num_params, np.float32)
        check(C.model_get_grads(self.ptr, ptr(out), out.size), "grads")
        return out

    def save(self, path, optimizer=None, rng=None, meta=None):
        """Write a checkpoint (atomically); optimizer and data rng state if given;
        meta: {"user.<name>": "value"} (self.meta is saved too)."""
        entries = dict(self.meta)
        entries.update(meta or {})
        arr = (_lib.MetaEntry * max(1, len(entries)))()
        for i, (k, v) in enumerate(entries.items()):
            arr[i].key = cstr(k, "metadata key")
            arr[i].value = cstr(v, "metadata value")
        opt = optimizer.ptr if optimizer is not None else None
        r = ctypes.byref(rng._s) if rng is not None else None
        check(C.checkpoint_save_with_meta(cstr(path, "path"), self.ptr, opt, r, arr, len(entries)), str(path))

    # ---- forward ----

    def _batch(self, x, inputs=None, targets=None, target_values=None, loss_weights=None):
        """(icl_batch, labels or None, keep-alive list) for prompts `x` (a
        PromptBatch, or tokens (B,T)) or `inputs` (B,T,d_in)."""
        if hasattr(x, "_tb"):
            if any(a is not None for a in (inputs, targets, target_values, loss_weights)):
                raise Error(ERR_INVALID_ARG, "a PromptBatch carries its own inputs, targets and weights")
            tb = x._tb_struct()
            labels = _lib.RowLabels(tb.roles, tb.prompt_len)
            return tb.batch, labels, [x]
        cfg = C.model_config(self.ptr).contents
        token = cfg.mode == _lib.MODE_TOKEN
        keep = []
        b = _lib.Batch()
        if token:
            if x is None or inputs is not None:
                raise Error(ERR_INVALID_ARG, "a token-mode model takes tokens (B,T), not inputs")
            tok = as_int32(x, "tokens", ndim=2)
            B, T = tok.shape
            b.tokens = ptr(tok)
            keep.append(tok)
            if targets is not None:
                tg = as_int32(targets, "targets", shape=(B, T))
                b.targets = ptr(tg)
                keep.append(tg)
        else:
            if x is not None and inputs is None:
                inputs = x
            if inputs is None:
                raise Error(ERR_INVALID_ARG, "a vector-mode model takes inputs (B,T,d_in)")
            inp = as_float(inputs, "inputs", ndim=3)
            B, T = inp.shape[:2]
            _check_shape(inp, "inputs", (B, T, cfg.d_in))
            b.inputs = ptr(inp)
            keep.append(inp)
            if target_values is not None:
                tv = as_float(target_values, "target_values", shape=(B, T, cfg.d_out))
                b.target_values = ptr(tv)
                keep.append(tv)
        if B == 0 or T == 0:
            raise Error(ERR_SHAPE, "empty batch: shape (%d, %d)" % (B, T))
        if loss_weights is not None:
            w = as_float(loss_weights, "loss_weights", shape=(B, T))
            b.loss_weights = ptr(w)
            keep.append(w)
        b.B, b.T = B, T
        return b, None, keep

    def _outputs(self, B, T):
        cfg = C.model_config(self.ptr).contents
        width = cfg.vocab_size if cfg.mode == _lib.MODE_TOKEN else cfg.d_out
        out = np.empty((B, T, width), np.float32)
        check(C.model_outputs(self.ptr, ptr(out), out.size), "outputs")
        return out

    def forward(self, tokens=None, *, inputs=None, targets=None, target_values=None, loss_weights=None,
                return_loss=False):
        """Logits (B,T,V) (token mode) or outputs (B,T,d_out) (vector mode) of
        tokens (B,T) / inputs (B,T,d_in) or of a PromptBatch; with targets and
        return_loss, (outputs, weighted mean loss)."""
        b, _, keep = self._batch(tokens, inputs, targets, target_values, loss_weights)
        loss = ctypes.c_float(float("nan"))
        check(C.model_forward(self.ptr, ctypes.byref(b), ctypes.byref(loss)), "forward")
        out = self._outputs(b.B, b.T)
        del keep
        return (out, loss.value) if return_loss else out

    def probs(self, tokens):
        """Softmax probabilities (B,T,V) of a token-mode forward pass."""
        out = self.forward(tokens)
        p = np.empty_like(out)
        check(C.model_probs(self.ptr, ptr(p), p.size), "probs")
        return p

    # hooks, caches, captures and interventions: libicl.hooks
    def run_with_cache(self, x, names=None, **kw):
        from .hooks import run_with_cache
        return run_with_cache(self, x, names, **kw)

    def run_with_hooks(self, x, hooks, **kw):
        from .hooks import run_with_hooks
        return run_with_hooks(self, x, hooks, **kw)

    def forward_with(self, x, interventions, **kw):
        from .hooks import forward_with
        return forward_with(self, x, interventions, **kw)

    def capture(self, x, specs):
        from .hooks import capture
        return capture(self, x, specs)


def _check_shape(a, name, shape):
    if a.shape != tuple(shape):
        raise Error(ERR_SHAPE, "%s must have shape %s, got %s" % (name, tuple(shape), a.shape))


def read_meta(path, key, default=...):
    """A checkpoint's metadata value (e.g. "user.task", "icl.step")."""
    size = 1 << 12
    while True:
        buf = ctypes.create_string_buffer(size)
        s = C.checkpoint_read_meta(cstr(path, "path"), cstr(key, "key"), buf, size)
        if s == _lib.OK:
            return text(buf.value)
        msg = _lib.last_error()
        if s == ERR_INVALID_ARG and "longer" in msg and size < 1 << 24:
            size *= 16
            continue
        if s == ERR_INVALID_ARG and default is not ...:
            return default
        raise Error(s, "%s: %s" % (path, msg))


def read_config(path):
    """The ModelConfig of a checkpoint, without loading its tensors."""
    c = ModelConfig()
    check(C.checkpoint_read_config(cstr(path, "path"), ctypes.byref(c._s)), str(path))
    return c


# ---- optimizer and training ----


class StepStats(dict):
    """{step, loss, grad_norm, lr, graph} of one optimizer step."""

    def __getattr__(self, k):
        try:
            return self[k]
        except KeyError:
            raise AttributeError(k)


def _stats(s):
    return StepStats(step=s.step, loss=s.loss, grad_norm=s.grad_norm, lr=s.lr, graph=bool(s.graph))


class Optimizer(Handle):
    """AdamW (icl_optimizer) on a model; keyword overrides of icl_optim_config_default()."""

    _kind = "optimizer"

    def __init__(self, model, **config):
        self._cfg = C.optim_config_default()
        for k, v in config.items():
            if k not in [f for f, _ in _lib.OptimConfig._fields_]:
                raise Error(ERR_INVALID_ARG, "icl_optim_config has no field %r" % k)
            setattr(self._cfg, k, _int(v, k) if k in ("warmup_steps", "total_steps") else float(v))
        p = ctypes.c_void_p()
        check(C.optimizer_create(ctypes.byref(p), model.ptr, ctypes.byref(self._cfg)), "optimizer")
        self.model = model
        self._adopt_from(model, p.value, C.optimizer_free)

    @property
    def step_count(self):
        return int(C.optimizer_step_count(self.ptr))

    def lr_at(self, step):
        return float(C.optim_lr_at(ctypes.byref(self._cfg), int(step)))

    def freeze(self, group, layer=-1, frozen=True):
        """Freeze (or unfreeze) a parameter group: embed, position, attn, mlp, norm, final_norm, head."""
        if group not in GROUPS:
            raise Error(ERR_INVALID_ARG, "unknown group %r (groups: %s)" % (group, ", ".join(GROUPS)))
        check(C.optimizer_freeze(self.ptr, GROUPS[group], _int(layer, "layer"), int(bool(frozen))), "freeze")

    def step(self, x, **batch):
        """One training step (icl_train_step) on a PromptBatch or tokens/targets/loss_weights."""
        b, _, keep = self.model._batch(x, **batch)
        st = _lib.StepStats()
        check(C.train_step(self.model.ptr, self.ptr, ctypes.byref(b), 1, ctypes.byref(st)), "train step")
        del keep
        return _stats(st)


class _Progress:
    """tqdm when importable, else a one-line text bar on stderr."""

    def __init__(self, total, first, enabled):
        self.total, self.first, self.bar = total, first, None
        self.enabled = enabled
        self.t0 = time.monotonic()
        if enabled:
            try:
                from tqdm import tqdm
                self.bar = tqdm(total=total, initial=first - 1, unit="step")
            except ImportError:
                pass

    def update(self, st):
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss="%.4f" % st["loss"])
            return
        done = st["step"] / self.total
        w = 30
        sys.stderr.write("\rstep %d/%d [%-*s] loss %.4f lr %.2e %.0fs" % (
            st["step"], self.total, w, "#" * int(done * w), st["loss"], st["lr"], time.monotonic() - self.t0))
        sys.stderr.flush()

    def close(self):
        if self.bar is not None:
            self.bar.close()
        elif self.enabled:
            sys.stderr.write("\n")


def train(model, optimizer, data, steps, batch_size=32, n_examples=-1, tasks=None, seed=1, rng=None,
          callback=None, progress=True, log_every=1, short_prompts=None):
    """Run icl_train_loop until the optimizer has taken `steps` steps.

    data: a TaskFamily (batches as `icl train --task` draws them: B prompts
    of n_examples examples from stream (seed, "data"), or `rng`), or a
    function (step, Rng) -> PromptBatch. short_prompts=(examples, steps):
    the first steps use shorter prompts (icl_curriculum_short_prompts's effect).
    callback(stats) runs every log_every steps; returning False stops the
    loop early. Returns {"step", "loss", "grad_norm", "lr"} arrays.
    """
    from .tasks import PromptBatch, TaskFamily
    steps = _int(steps, "steps", 1)
    log_every = _int(log_every, "log_every", 1)
    if rng is None:
        rng = Rng(seed, "data")
    hist = {"step": [], "loss": [], "grad_norm": [], "lr": []}
    state = {"error": None, "stopped": False, "batch": None}
    if isinstance(data, TaskFamily):
        fam = data
        opts = fam._batch_options(_int(batch_size, "batch_size", 1), n_examples, tasks)
        keep_opts = opts
        n_full = opts._s.n_examples

        def make(step, r):
            if short_prompts is not None:
                opts._s.n_examples = short_prompts[0] if step <= short_prompts[1] else n_full
            pb = PromptBatch._generate(fam, opts, r)
            return pb
    elif callable(data):
        keep_opts = None

        def make(step, r):
            pb = data(step, r)
            if not isinstance(pb, PromptBatch):
                raise Error(ERR_INVALID_ARG, "the data function must return a PromptBatch")
            return pb
    else:
        raise Error(ERR_INVALID_ARG, "data must be a TaskFamily or a function (step, rng) -> PromptBatch")

    def next_batch(user, step, micro, rng_p, batch_p):
        try:
            r = Rng.__new__(Rng)
            r._s = rng_p.contents  # the loop's child stream, advanced in place
            pb = make(step, r)
            state["batch"] = pb  # the C loop reads its memory after we return
            batch_p[0] = pb._tb_struct().batch
            return _lib.OK
        except BaseException as e:  # noqa: B902 - re-raised after the loop
            state["error"] = e
            return ERR_INVALID_ARG

    bar = _Progress(steps, optimizer.step_count + 1, progress)

    def on_log(user, st_p):
        try:
            st = _stats(st_p.contents)
            for k in hist:
                hist[k].append(st[k])
            bar.update(st)
            if callback is not None and callback(st) is False:
                state["stopped"] = True
                return _lib.ERR_STATE
            return _lib.OK
        except BaseException as e:  # noqa: B902
            state["error"] = e
            return ERR_INVALID_ARG

    cb_batch = _lib.BATCH_FN(next_batch)
    cb_log = _lib.STEP_FN(on_log)
    lc = _lib.TrainLoopConfig(steps=steps, grad_accum=1, next_batch=cb_batch, on_log=cb_log, log_every=log_every)
    try:
        s = C.train_loop(model.ptr, optimizer.ptr, ctypes.byref(rng._s), ctypes.byref(lc))
    finally:
        bar.close()
    del keep_opts
    if state["error"] is not None:
        raise state["error"]
    if s != _lib.OK and not state["stopped"]:
        check(s, "training")
    return {k: np.array(v) for k, v in hist.items()}


__all__ = ["Model", "ModelConfig", "Optimizer", "Rng", "StepStats", "backend_available", "read_config", "read_meta",
           "train"]
