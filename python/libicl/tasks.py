"""Task families and batches of prompts as numpy arrays."""
import ctypes

import numpy as np

from . import _lib
from ._lib import C, ERR_INVALID_ARG, Error, check, cstr
from ._util import Handle, as_float, copy_out, ptr, text
from .model import Rng, _int, _u64

# Stream of `icl sample` and TaskFamily.sample(seed=...): prompts of seed s come from icl_rng_init(s, "sample").
SAMPLE_STREAM = "sample"


def registry():
    """Names of the registered task families and presets."""
    return [text(C.task_registry_name(i)) for i in range(C.task_registry_count())]


def mix_counts(lambdas, n_examples):
    """Exact example counts of each task for proportions lambdas (icl_task_mix_counts)."""
    lam = as_float(lambdas, "lambdas", ndim=1, dtype=np.float64)
    counts = np.zeros(lam.size, np.intc)
    check(C.task_mix_counts(ptr(lam), lam.size, _int(n_examples, "n_examples"),
                            counts.ctypes.data_as(ctypes.POINTER(ctypes.c_int))), "mix_counts")
    return counts.astype(np.int32)


def _intp(a):
    return a.ctypes.data_as(ctypes.POINTER(ctypes.c_int)) if a is not None else None


class TaskFamily(Handle):
    """A task family from a spec string, e.g. "retrieval" or "retrieval:A=16,L=6,tasks=4"."""

    _kind = "task family"

    def __init__(self, spec):
        p = ctypes.c_void_p()
        check(C.task_family_create(ctypes.byref(p), cstr(spec, "spec")), "task family %r" % (spec,))
        self._set(p.value)

    def _free(self, p):
        C.task_family_free(p)

    @property
    def name(self):
        return text(C.task_family_name(self.ptr))

    @property
    def spec(self):
        return text(C.task_family_spec(self.ptr))

    @property
    def mode(self):
        return "token" if C.task_family_mode(self.ptr) == _lib.MODE_TOKEN else "vector"

    @property
    def num_tasks(self):
        return C.task_family_num_tasks(self.ptr)

    @property
    def task_names(self):
        return [text(C.task_family_task_name(self.ptr, i)) for i in range(self.num_tasks)]

    def task_id(self, name):
        if isinstance(name, (int, np.integer)) and not isinstance(name, bool):
            if not 0 <= name < self.num_tasks:
                raise Error(ERR_INVALID_ARG, "task %d outside [0, %d)" % (name, self.num_tasks))
            return int(name)
        t = ctypes.c_int()
        check(C.task_family_find_task(self.ptr, cstr(name, "task name"), ctypes.byref(t)), "task")
        return t.value

    @property
    def vocab_size(self):
        return C.task_family_vocab_size(self.ptr)

    @property
    def token_names(self):
        return [text(C.task_family_token_name(self.ptr, i)) for i in range(self.vocab_size)]

    @property
    def input_len(self):
        return C.task_family_input_len(self.ptr)

    @property
    def answer_len(self):
        return C.task_family_answer_len(self.ptr)

    @property
    def d_in(self):
        return C.task_family_d_in(self.ptr)

    @property
    def d_out(self):
        return C.task_family_d_out(self.ptr)

    @property
    def dim(self):
        return C.task_family_dim(self.ptr)

    @property
    def default_examples(self):
        return C.task_family_default_examples(self.ptr)

    def prompt_len(self, n_examples=-1):
        n = self.default_examples if n_examples < 0 else n_examples
        T = ctypes.c_int()
        check(C.task_family_prompt_len(self.ptr, _int(n, "n_examples"), ctypes.byref(T)), "prompt_len")
        return T.value

    def _tasks(self, tasks):
        if tasks is None:
            return None
        if isinstance(tasks, (str, int, np.integer)):
            tasks = [tasks]
        ids = np.array([self.task_id(t) for t in tasks], np.intc)
        if ids.size == 0:
            raise Error(ERR_INVALID_ARG, "empty task list")
        return ids

    def _gen(self, loss, query_unseen, active_dims, ctx):
        g = C.gen_options_default()
        if loss not in _lib.LOSS_MASKS:
            raise Error(ERR_INVALID_ARG, "loss must be one of %s, got %r" % (", ".join(_lib.LOSS_MASKS), loss))
        g.loss = _lib.LOSS_MASKS[loss]
        g.query_unseen = int(bool(query_unseen))
        g.active_dims = _int(active_dims, "active_dims", 0)
        g.ctx = _int(ctx, "ctx", 0)
        return g

    def _batch_options(self, B, n_examples=-1, tasks=None, pad_to=0, loss="answers", query_unseen=False,
                       active_dims=0, ctx=0):
        o = C.task_batch_options_default()
        o.B = _int(B, "B", 1)
        o.n_examples = _int(n_examples, "n_examples", -1)
        ids = self._tasks(tasks)
        if ids is not None:
            o.tasks, o.n_tasks = _intp(ids), ids.size
        o.pad_to = _int(pad_to, "pad_to", 0)
        o.gen = self._gen(loss, query_unseen, active_dims, ctx)
        return _Opts(o, ids)

    def sample(self, B, n_examples=-1, tasks=None, seed=1, rng=None, pad_to=0, loss="answers",
               query_unseen=False, active_dims=0):
        """B single-task prompts (icl_task_batch_generate), each task drawn from
        `tasks` (names or ids; None = all). Randomness: `rng` (an Rng, advanced)
        or the stream (seed, "sample") that `icl sample --seed` uses."""
        if rng is None:
            rng = Rng(_u64(seed, "seed"), SAMPLE_STREAM)
        opts = self._batch_options(B, n_examples, tasks, pad_to, loss, query_unseen, active_dims)
        return PromptBatch._generate(self, opts, rng)

    def prompt_set(self, task, count, first=0, n_examples=-1, seed=1, stream=_lib.FV_STREAM_EVAL,
                   shuffle_labels=False, ctx=0, loss="answers"):
        """Prompts [first, first+count) of a prompt set (icl_prompt_set_batch):
        prompt i depends only on (seed, stream, task, n_examples, i), so this
        regenerates the prompts the task- and function-vector probes used
        (streams libicl._lib.TV_STREAM_*, FV_STREAM_*; n_examples -1 = the
        family default). shuffle_labels permutes the example answers; ctx > 0
        refuses longer prompts."""
        if loss not in _lib.LOSS_MASKS:
            raise Error(ERR_INVALID_ARG, "loss must be one of %s, got %r" % (", ".join(_lib.LOSS_MASKS), loss))
        k = self.default_examples if n_examples == -1 else _int(n_examples, "n_examples", 0)
        ps = _lib.PromptSet(_u64(seed, "seed"), cstr(stream, "stream"), self.task_id(task), k,
                            int(bool(shuffle_labels)), _int(ctx, "ctx", 0), _lib.LOSS_MASKS[loss])
        pb = PromptBatch._new(self)
        check(C.prompt_set_batch(self.ptr, ctypes.byref(ps), _int(first, "first", 0), _int(count, "count", 1),
                                 ctypes.byref(pb._tb)), "prompt_set")
        return pb

    def sample_mixed(self, B, mixture, n_examples=-1, seed=1, rng=None, loss="answers"):
        """B mixed prompts: mixture {task: proportion} (or a list of (task,
        proportion)); the examples split exactly as mix_counts says, in random
        order; prompt i from Rng.split(i) of (seed, "sample") or of rng.
        The batch has .mix_tasks, .mix_counts and .mix_answers (B, K, answer_len)
        (vector families: .mix_answer_values (B, K, d_out))."""
        items = list(mixture.items()) if isinstance(mixture, dict) else list(mixture)
        if len(items) < 1:
            raise Error(ERR_INVALID_ARG, "empty mixture")
        ids = np.array([self.task_id(t) for t, _ in items], np.intc)
        lam = as_float([l for _, l in items], "proportions", ndim=1, dtype=np.float64)
        n = self.default_examples if n_examples < 0 else _int(n_examples, "n_examples", 1)
        if rng is None:
            rng = Rng(_u64(seed, "seed"), SAMPLE_STREAM)
        g = self._gen(loss, True, 0, 0)
        mps = [_lib.MixedPrompt() for _ in range(_int(B, "B", 1))]
        try:
            for i, mp in enumerate(mps):
                child = rng.split(i)
                check(C.task_generate_mixed(self.ptr, _intp(ids), ptr(lam), ids.size, n, ctypes.byref(g),
                                            ctypes.byref(child._s), ctypes.byref(mp)), "mixed prompt")
            arr = (ctypes.POINTER(_lib.Prompt) * len(mps))(*[ctypes.pointer(mp.prompt) for mp in mps])
            pb = PromptBatch._pack(self, arr, len(mps))
            K, A = ids.size, mps[0].prompt.answer_len
            pb.mix_tasks = ids.astype(np.int32)
            pb.mix_counts = np.array([copy_out(mp.counts, (K,), np.intc) for mp in mps], np.int32)
            if self.mode == "token":
                pb.mix_answers = np.array([copy_out(mp.answers, (K, A), np.int32) for mp in mps])
            else:
                pb.mix_answer_values = np.array([copy_out(mp.answer_values, (K, A), np.float32) for mp in mps])
        finally:
            for mp in mps:
                C.mixed_prompt_free(ctypes.byref(mp))
        return pb


class _Opts:
    """icl_task_batch_options with the task array it points to kept alive."""

    def __init__(self, s, ids):
        self._s, self._ids = s, ids


class PromptBatch(Handle):
    """A batch of prompts (an icl_task_batch) with its arrays copied out:
    tokens/targets (token mode) or inputs/target_values (vector mode),
    loss_weights, roles, example_ids, task_ids (B,T); prompt_task, prompt_len,
    query_pos (B); answers: the query answer of each row, (B, answer_len)
    tokens or (B, d_out) values; texts: each prompt rendered."""

    _kind = "prompt batch"

    @classmethod
    def _new(cls, family):
        pb = cls.__new__(cls)
        pb._tb = _lib.TaskBatch()
        pb._set(ctypes.addressof(pb._tb))
        pb.family = family
        return pb

    @classmethod
    def _generate(cls, family, opts, rng):
        pb = cls._new(family)
        check(C.task_batch_generate(family.ptr, ctypes.byref(opts._s), ctypes.byref(rng._s),
                                    ctypes.byref(pb._tb)), "sample")
        return pb

    @classmethod
    def _pack(cls, family, prompts, n, pad_to=0):
        pb = cls._new(family)
        check(C.task_batch_pack(ctypes.byref(pb._tb), prompts, n, pad_to), "pack")
        return pb

    def _free(self, p):
        C.task_batch_free(ctypes.byref(self._tb))

    def _tb_struct(self):
        self.ptr
        return self._tb

    _LAZY = ("mode", "B", "T", "tokens", "targets", "inputs", "target_values", "loss_weights", "roles",
             "example_ids", "task_ids", "prompt_task", "prompt_len", "query_pos", "answers", "texts")

    def __getattr__(self, k):
        # The arrays are copied out of C on first use (training never needs them).
        if k in PromptBatch._LAZY and "_copied" not in self.__dict__:
            self._read()
            return getattr(self, k)
        raise AttributeError(k)

    def _read(self):
        tb = self._tb_struct()
        self._copied = True
        B, T = tb.B, tb.T
        self.mode = "token" if tb.mode == _lib.MODE_TOKEN else "vector"
        self.B, self.T = B, T
        if self.mode == "token":
            self.tokens = copy_out(tb.tokens, (B, T), np.int32)
            self.targets = copy_out(tb.targets, (B, T), np.int32)
        else:
            self.inputs = copy_out(tb.inputs, (B, T, tb.d_in), np.float32)
            self.target_values = copy_out(tb.target_values, (B, T, tb.d_out), np.float32)
        self.loss_weights = copy_out(tb.loss_weights, (B, T), np.float32)
        for k in ("roles", "example_ids", "task_ids"):
            setattr(self, k, copy_out(getattr(tb, k), (B, T), np.int32))
        for k in ("prompt_task", "prompt_len", "query_pos"):
            setattr(self, k, copy_out(getattr(tb, k), (B,), np.int32))
        A = tb.prompts[0].answer_len
        if self.mode == "token":
            ans = np.zeros((B, A), np.int32)
            for b in range(B):
                ans[b] = self.tokens[b][self.roles[b] == _lib.ROLE_QUERY_ANSWER][:A]
        else:
            ans = self.target_values[np.arange(B), self.query_pos].copy()
        self.answers = ans
        self.texts = [self._render(b) for b in range(B)]

    def _render(self, b):
        size = 64 * (self.T + 4) * max(1, self._tb.d_in)
        while True:
            buf = ctypes.create_string_buffer(size)
            s = C.prompt_render(self.family.ptr, ctypes.byref(self._tb.prompts[b]), buf, size)
            if s == _lib.OK:
                return text(buf.value)
            if s != ERR_INVALID_ARG or size > 1 << 26:
                check(s, "render")
            size *= 4

    def render(self, b=0):
        """Prompt b as text."""
        if not 0 <= b < self.B:
            raise Error(ERR_INVALID_ARG, "prompt %r outside [0, %d)" % (b, self.B))
        return self.texts[b]

    def answers_of(self, task):
        """The answer `task` gives to each row's query input: (B, answer_len)
        tokens (icl_query_answers; token families)."""
        out = np.empty((self.B, self._tb.prompts[0].answer_len), np.int32)
        check(C.query_answers(self.family.ptr, ctypes.byref(self._tb_struct()), self.family.task_id(task), ptr(out)),
              "answers_of")
        return out

    def arrays(self):
        """The batch's numpy arrays by name (what `icl sample` writes)."""
        names = (["tokens", "targets"] if self.mode == "token" else ["inputs", "target_values"]) + [
            "loss_weights", "roles", "example_ids", "task_ids", "prompt_task", "prompt_len", "query_pos", "answers"]
        return {k: getattr(self, k) for k in names}

    def __len__(self):
        return self.B


__all__ = ["TaskFamily", "PromptBatch", "mix_counts", "registry", "SAMPLE_STREAM"]
