"""The library's probes, their results as numpy arrays in dicts.

Option names and defaults are the C options structs' (the *_default()
functions of include/icl/*.h); keyword arguments override single fields.
Shapes are documented in the headers: superposition.h, lens.h,
task_vectors.h, representations.h, readout.h, eval.h.
"""
import ctypes

import numpy as np

from . import _lib
from ._lib import C, ERR_INVALID_ARG, Error, check, cstr
from ._util import Handle, as_float, as_int32, copy_out, ptr, text
from .hooks import Intervention, positions
from .model import Rng, _int, _u64
from .tasks import PromptBatch, _intp

_F64, _F32, _I32, _U8 = np.float64, np.float32, np.int32, np.uint8


def _set(struct, fields, what):
    names = [f for f, _ in struct._fields_]
    for k, v in fields.items():
        if k not in names:
            raise Error(ERR_INVALID_ARG, "%s has no option %r (options: %s)" % (what, k, ", ".join(names)))
        cur = getattr(struct, k)
        setattr(struct, k, float(v) if isinstance(cur, float) else int(v))


def _tasks_field(struct, family, tasks, keep):
    if tasks is None:
        return
    ids = family._tasks(tasks)
    keep.append(ids)
    struct.tasks, struct.n_tasks = _intp(ids), ids.size


def _ivs(model, tb, interventions, keep):
    interventions = list(interventions or [])
    arr = (_lib.Intervention * max(1, len(interventions)))()
    for i, iv in enumerate(interventions):
        if not isinstance(iv, Intervention):
            raise Error(ERR_INVALID_ARG, "interventions must be libicl.Intervention objects")
        arr[i] = iv._struct(model, tb.B, tb.T, keep)
    return arr, len(interventions)


def _batch(pb):
    if not isinstance(pb, PromptBatch):
        raise Error(ERR_INVALID_ARG, "expected a PromptBatch (TaskFamily.sample)")
    return ctypes.byref(pb._tb_struct())


def _answers(pb, answers, what="answers"):
    _batch(pb)
    A = pb._tb.prompts[0].answer_len
    a = as_int32(answers, what)
    if a.ndim == 2:
        a = a.reshape(a.shape[0], 1, a.shape[1])
    if a.ndim != 3 or a.shape[0] != pb.B or a.shape[2] != A:
        raise Error(_lib.ERR_SHAPE, "%s must have shape (B=%d, n_cand, %d), got %s" % (what, pb.B, A, a.shape))
    return np.ascontiguousarray(a)


# ---- readouts ----


def answer_probs(model, batch, answers=None, interventions=()):
    """Teacher-forced probability of candidate answers (B, n_cand, A) (default:
    each row's own answer) to each prompt's query: (B, n_cand)."""
    a = _answers(batch, getattr(batch, "answers", None) if answers is None else answers)
    keep = []
    iv, n_iv = _ivs(model, batch, interventions, keep)
    out = np.empty((batch.B, a.shape[1]), _F64)
    check(C.answer_probs(model.ptr, _batch(batch), ptr(a), a.shape[1], iv, n_iv, ptr(out), None), "answer_probs")
    return out


def residuals_at(model, batch, pos="query_sep", interventions=()):
    """Residual stream (L+1, B, C) at the first position `pos` selects in each row."""
    keep = []
    iv, n_iv = _ivs(model, batch, interventions, keep)
    cfg = C.model_config(model.ptr).contents
    out = np.empty((cfg.n_layer + 1, batch.B, cfg.d_model), _F32)
    check(C.residuals_at(model.ptr, _batch(batch), positions(pos), iv, n_iv, ptr(out)), "residuals_at")
    return out


# ---- logit lens and head ablation ----


class Lens(Handle):
    """A model's final layernorm and unembedding (icl_lens), for the logit lens."""

    _kind = "lens"

    def __init__(self, model):
        p = ctypes.c_void_p()
        check(C.lens_create(model.ptr, ctypes.byref(p)), "lens")
        self.model = model
        self._adopt_from(model, p.value, C.lens_free)

    @property
    def levels(self):
        return C.lens_levels(self.ptr)

    def apply(self, h):
        """softmax(W_U LN_f(h)) for residual vectors h (n, C): (n, V) float64."""
        cfg = C.model_config(self.model.ptr).contents
        x = as_float(h, "h", shape=(None, cfg.d_model))
        out = np.empty((x.shape[0], cfg.vocab_size), _F64)
        check(C.lens_apply(self.ptr, ptr(x), x.shape[0], ptr(out)), "lens_apply")
        return out


def logit_lens(model, batch, answers=None, interventions=(), lens=None):
    """Answer probabilities read through the logit lens at every level:
    (L+1, B, n_cand) (default candidates: each row's own answer)."""
    own = lens is None
    lens = Lens(model) if own else lens
    try:
        a = _answers(batch, batch.answers if answers is None else answers)
        keep = []
        iv, n_iv = _ivs(model, batch, interventions, keep)
        out = np.empty((lens.levels, batch.B, a.shape[1]), _F64)
        check(C.lens_answer_probs(model.ptr, lens.ptr, _batch(batch), ptr(a), a.shape[1], iv, n_iv, ptr(out)),
              "logit_lens")
        return out
    finally:
        if own:
            lens.close()


def head_ablation(model, batch, layer, head, mode="zero", mean_batches=()):
    """Each row's own answer with head (layer, head) ablated: token mode
    {"probs" (B), "correct" (B)}; vector mode {"err" (B)}. mode "mean" needs
    mean_batches: PromptBatches whose head outputs give the means."""
    if mode not in _lib.ABLATE_MODES:
        raise Error(ERR_INVALID_ARG, "mode must be \"zero\" or \"mean\", got %r" % (mode,))
    hm = ctypes.c_void_p()
    if mode == "mean":
        if not mean_batches:
            raise Error(ERR_INVALID_ARG, "mean ablation needs mean_batches")
        T = max(b.T for b in list(mean_batches) + [batch])
        check(C.head_means_create(model.ptr, T, ctypes.byref(hm)), "head means")
    try:
        for mb in mean_batches if mode == "mean" else ():
            check(C.head_means_add(hm, model.ptr, _batch(mb)), "head means")
        args = (model.ptr, _batch(batch), _int(layer, "layer"), _int(head, "head"), _lib.ABLATE_MODES[mode], hm)
        if batch.mode == "token":
            probs, correct = np.empty(batch.B, _F64), np.empty(batch.B, _U8)
            check(C.head_ablation(*args, ptr(probs), ptr(correct)), "head_ablation")
            return {"probs": probs, "correct": correct.astype(bool)}
        err = np.empty(batch.B, _F64)
        check(C.head_ablation_errors(*args, ptr(err)), "head_ablation")
        return {"err": err}
    finally:
        if hm:
            C.head_means_free(hm)


# ---- superposition ----


def _stats(s, K):
    return {"mean": copy_out(s.mean, (K,), _F64), "sd": copy_out(s.sd, (K,), _F64),
            "sorted": copy_out(s.sorted, (K,), _F64), "solved": copy_out(s.solved, (K,), _F64),
            "other": s.other, "kl_raw": s.kl_raw, "kl_renorm": s.kl_renorm, "r": s.r, "pk_exact": s.pk_exact}


def superposition(model, family, mixture, seed=1, stream="superposition", **opts):
    """Task superposition on mixed prompts (icl_superposition_run): mixture
    {task: proportion}. Options: n_prompts, n_examples, batch, beam, lens,
    solved. Returns tasks, counts, lambda, P (n,K), pK (n), pK_exact (n),
    stats (the summary of the model output), and with lens=1 lens_P
    (levels,n,K), lens_pK, lens_stats (a list per level)."""
    items = list(mixture.items()) if isinstance(mixture, dict) else list(mixture)
    ids = np.array([family.task_id(t) for t, _ in items], np.intc)
    lam = as_float([l for _, l in items], "proportions", ndim=1, dtype=_F64)
    o = C.superposition_options_default()
    _set(o, opts, "superposition")
    rng = Rng(_u64(seed, "seed"), stream)
    r = _lib.SuperpositionResult()
    check(C.superposition_run(model.ptr, family.ptr, _intp(ids), ptr(lam), ids.size, ctypes.byref(o),
                              ctypes.byref(rng._s), ctypes.byref(r)), "superposition")
    try:
        K, n, L = r.K, r.n, r.levels
        out = {"tasks": copy_out(r.tasks, (K,), np.intc).astype(_I32), "counts": copy_out(r.counts, (K,), np.intc),
               "lambda": copy_out(r.lambda_, (K,), _F64), "collisions": r.collisions, "n_examples": r.n_examples,
               "P": copy_out(r.P, (n, K), _F64), "pK": copy_out(r.pK, (n,), _F64),
               "pK_exact": copy_out(r.pK_exact, (n,), _U8).astype(bool), "stats": _stats(r.out, K)}
        if L:
            out["lens_P"] = copy_out(r.lens_P, (L, n, K), _F64)
            out["lens_pK"] = copy_out(r.lens_pK, (L, n), _F64)
            out["lens_stats"] = [_stats(r.lens[l], K) for l in range(L)]
        return out
    finally:
        C.superposition_result_free(ctypes.byref(r))


# ---- task and function vectors ----


def tv_intervention(model, level, vector, mode="replace"):
    """An Intervention writing `vector` (C) at residual level `level` at every
    row's query position (what icl_tv_intervention builds)."""
    if mode not in _lib.TV_MODES:
        raise Error(ERR_INVALID_ARG, "mode must be \"replace\" or \"add\"")
    cfg = C.model_config(model.ptr).contents
    v = as_float(vector, "vector", shape=(cfg.d_model,))
    s = _lib.Intervention()
    check(C.tv_intervention(model.ptr, _int(level, "level"), _lib.TV_MODES[mode], ptr(v), ctypes.byref(s)),
          "tv_intervention")
    from .hooks import point_name
    role = _lib.ROLE_NAMES[s.pos.role]
    return Intervention(point_name(s.point, s.layer), [k for k, x in _lib.IV_OPS.items() if x == s.op][0],
                        positions=role if s.pos.kind == _lib.POS_ROLE else (role, s.pos.nth), vector=v,
                        alpha=s.alpha)


def task_vectors(model, family, tasks=None, mode="replace", **opts):
    """icl_task_vectors_run: vectors (n_tasks, levels, C), best_level and the
    patching matrices of task_vectors.h (token: zs_p0, zs_acc0, zs_p, zs_acc,
    base_p, base_acc, mat_p, mat_acc, mat_p_own, mat_acc_own, pairs, alphas,
    interp, and with n_examples >= 2 mix_alpha, mix_offline; vector: base_mse, mat_mse).
    Options: n_prompts, n_examples,
    eval_prompts, target_examples, add_raw, level, n_alpha, batch, seed."""
    keep = []
    o = C.tv_options_default(family.ptr)
    _tasks_field(o, family, tasks, keep)
    if mode not in _lib.TV_MODES:
        raise Error(ERR_INVALID_ARG, "mode must be \"replace\" or \"add\"")
    o.mode = _lib.TV_MODES[mode]
    _set(o, opts, "task_vectors")
    r = _lib.TvResult()
    check(C.task_vectors_run(model.ptr, family.ptr, ctypes.byref(o), ctypes.byref(r)), "task_vectors")
    try:
        n, L, Cd = r.n_tasks, r.n_levels, r.C
        out = {"tasks": copy_out(r.tasks, (n,), np.intc).astype(_I32), "vectors": copy_out(r.vectors, (n, L, Cd), _F32),
               "best_level": r.best_level, "best_helps": bool(r.best_helps)}
        if r.mode == _lib.MODE_TOKEN:
            for k in ("zs_p0", "zs_acc0"):
                out[k] = copy_out(getattr(r, k), (n,), _F64)
            for k in ("zs_p", "zs_acc"):
                out[k] = copy_out(getattr(r, k), (n, L), _F64)
            for k in ("base_p", "base_acc"):
                out[k] = copy_out(getattr(r, k), (n, n), _F64)
            for k in ("mat_p", "mat_acc", "mat_p_own", "mat_acc_own"):
                out[k] = copy_out(getattr(r, k), (L, n, n), _F64)
            out["interp_level"] = r.interp_level
            out["pairs"] = copy_out(r.pairs, (r.n_pairs, 2), np.intc).astype(_I32)
            out["alphas"] = copy_out(r.alphas, (r.n_alpha,), _F64)
            out["interp"] = copy_out(r.interp, (r.n_pairs, r.n_alpha, 3), _F64)
            if r.mix_alpha:
                out["mix_alpha"] = copy_out(r.mix_alpha, (r.n_pairs, L), _F64)
                out["mix_offline"] = copy_out(r.mix_offline, (r.n_pairs, L), _F64)
        else:
            out["base_mse"] = copy_out(r.base_mse, (n,), _F64)
            out["mat_mse"] = copy_out(r.mat_mse, (L, n, n), _F64)
        return out
    finally:
        C.tv_result_free(ctypes.byref(r))


def function_vectors(model, family, tasks=None, **opts):
    """icl_function_vectors_run: head_means (n_tasks, L, NH, HS), aie (n_tasks,
    L, NH), aie_mean, rank, heads (top_k, 2), fv (n_tasks, C), acc and p
    (n_tasks, 3 conditions clean/zero_shot/shuffled, without/with the FV), and
    what they average: acc_prompt and p_prompt (n_tasks, 3, 2, eval_prompts)
    per evaluation prompt, aie_p0 (n_tasks, eval_prompts) and aie_p (n_tasks,
    L, NH, eval_prompts) per shuffled-label prompt, unpatched and with each
    head patched. Prompt i of a condition is TaskFamily.prompt_set's prompt i
    of stream FV_STREAM_EVAL."""
    keep = []
    o = C.fv_options_default(family.ptr)
    _tasks_field(o, family, tasks, keep)
    _set(o, opts, "function_vectors")
    r = _lib.FvResult()
    check(C.function_vectors_run(model.ptr, family.ptr, ctypes.byref(o), ctypes.byref(r)), "function_vectors")
    try:
        n, L, NH, HS, Cd = r.n_tasks, r.L, r.NH, r.HS, r.C
        return {"tasks": copy_out(r.tasks, (n,), np.intc).astype(_I32),
                "head_means": copy_out(r.head_means, (n, L, NH, HS), _F32),
                "aie": copy_out(r.aie, (n, L, NH), _F64), "aie_mean": copy_out(r.aie_mean, (L, NH), _F64),
                "rank": copy_out(r.rank, (L, NH), np.intc).astype(_I32),
                "heads": copy_out(r.heads, (r.top_k, 2), np.intc).astype(_I32), "fv_layer": r.fv_layer,
                "fv_mid": r.fv_mid, "fv": copy_out(r.fv, (n, Cd), _F32),
                "acc": copy_out(r.acc, (n, _lib.FV_N_CONDITIONS, 2), _F64),
                "p": copy_out(r.p, (n, _lib.FV_N_CONDITIONS, 2), _F64),
                "acc_prompt": copy_out(r.acc_prompt, (n, _lib.FV_N_CONDITIONS, 2, r.eval_prompts), _F64),
                "p_prompt": copy_out(r.p_prompt, (n, _lib.FV_N_CONDITIONS, 2, r.eval_prompts), _F64),
                "aie_p0": copy_out(r.aie_p0, (n, r.eval_prompts), _F64),
                "aie_p": copy_out(r.aie_p, (n, L, NH, r.eval_prompts), _F64)}
    finally:
        C.fv_result_free(ctypes.byref(r))


# ---- representations ----


def _prompts_options(family, tasks, prompts_per_task, n_examples, seed, keep):
    o = C.repr_prompts_options_default()
    _tasks_field(o, family, tasks, keep)
    if prompts_per_task is not None:
        o.prompts_per_task = _int(prompts_per_task, "prompts_per_task", 1)
    if n_examples is not None:
        o.n_examples = _int(n_examples, "n_examples", -1)
    o.seed = _u64(seed, "seed")
    return o


def _site(family, site, min_shots=0):
    """site: None (the probe's default), or a dict {role, nth, pool} of text
    as the command-line options take it."""
    if site is None:
        return None
    if not isinstance(site, dict):
        raise Error(ERR_INVALID_ARG, "site must be a dict with keys role, nth, pool")
    s = _lib.ReprSite()
    args = [cstr(str(site[k]), k) if site.get(k) is not None else None for k in ("role", "nth", "pool")]
    check(C.repr_site_parse(family.ptr, *args, _int(min_shots, "min_shots"), ctypes.byref(s)), "site")
    return s


def decodability(model, family, tasks=None, prompts_per_task=None, n_examples=None, seed=1, site=None, **opts):
    """Task decodability (icl_decodability_run): td (levels, n_tasks),
    td_mean (levels), td_weighted and td_weighted_mean (distance-weighted votes), best_level, pairwise_level,
    pairwise (n_tasks, n_tasks),
    score (n_tasks), and with pca_dims > 0 pca (levels, n, pca_dims) and
    pca_var. Options: k, pairwise_level, pca_dims."""
    keep = []
    po = _prompts_options(family, tasks, prompts_per_task, n_examples, seed, keep)
    to = C.td_options_default()
    _set(to, opts, "decodability")
    s = _site(family, site)
    r = _lib.TdResult()
    check(C.decodability_run(model.ptr, family.ptr, ctypes.byref(po), ctypes.byref(s) if s else None,
                              ctypes.byref(to), ctypes.byref(r)), "decodability")
    try:
        return _td_out(r)
    finally:
        C.td_result_free(ctypes.byref(r))


def _td_out(r):
    Lv, n, N, d = r.levels, r.n_tasks, r.n, r.pca_dims
    out = {"td": copy_out(r.td, (Lv, n), _F64), "td_mean": copy_out(r.td_mean, (Lv,), _F64),
           "td_weighted": copy_out(r.td_weighted, (Lv, n), _F64),
           "td_weighted_mean": copy_out(r.td_weighted_mean, (Lv,), _F64),
           "best_level": r.best_level, "pairwise_level": r.pairwise_level,
           "pairwise": copy_out(r.pairwise, (n, n), _F64), "score": copy_out(r.score, (n,), _F64)}
    if d > 0:
        out["pca"] = copy_out(r.pca, (Lv, N, d), _F64)
        out["pca_var"] = copy_out(r.pca_var, (Lv, d), _F64)
    return out


def rsa(model, family, tasks=None, prompts_per_task=None, shots=None, seed=1, site=None, labels=None, **opts):
    """RSA per condition and level (icl_rsa_run): shots (n_shots),
    hypotheses (names), rho and p (n_shots, n_hyp, levels), score (n_shots),
    task_labels (n), rsm (n_shots, levels, n, n) with keep_rsm=1.
    Options: same_queries, n_perm, keep_rsm, seed (of the permutations)."""
    keep = []
    po = _prompts_options(family, tasks, prompts_per_task, None, seed, keep)
    ro = C.rsa_options_default(family.ptr)
    if shots is not None:
        shots = [_int(s, "shots", 0) for s in shots]
        if not 1 <= len(shots) <= _lib.RSA_MAX_SHOTS:
            raise Error(ERR_INVALID_ARG, "shots: 1 to %d conditions" % _lib.RSA_MAX_SHOTS)
        ro.n_shots = len(shots)
        for i, s in enumerate(shots):
            ro.shots[i] = s
    if labels is not None:
        lab = as_int32(labels, "labels", ndim=1)
        keep.append(lab)
        ro.labels = ptr(lab)
    _set(ro, opts, "rsa")
    s = _site(family, site, min(ro.shots[:ro.n_shots]))
    r = _lib.RsaResult()
    check(C.rsa_run(model.ptr, family.ptr, ctypes.byref(po), ctypes.byref(s) if s else None, ctypes.byref(ro),
                      ctypes.byref(r)), "rsa")
    try:
        S, H, Lv, n = r.n_shots, r.n_hyp, r.levels, r.n
        if labels is not None and lab.size != n:
            raise Error(_lib.ERR_SHAPE, "labels must have %d entries" % n)
        out = {"shots": copy_out(r.shots, (S,), np.intc).astype(_I32),
               "hypotheses": [text(r.hyp_names[i]) for i in range(H)],
               "rho": copy_out(r.rho, (S, H, Lv), _F64), "p": copy_out(r.p, (S, H, Lv), _F64),
               "score": copy_out(r.score, (S,), _F64), "task_labels": copy_out(r.task_labels, (n,), _I32)}
        if r.rsm:
            out["rsm"] = copy_out(r.rsm, (S, Lv, n, n), _F64)
        return out
    finally:
        C.rsa_result_free(ctypes.byref(r))


def linear(model, family, target="task", tasks=None, prompts_per_task=None, n_examples=None, seed=1, site=None,
           shots=None, max_shots=None, same_queries=True, **opts):
    """Linear probes per level (icl_linear_probe_levels_cv) on a generated prompt
    set: metric (levels) (cross-validated accuracy, or R^2), chance, and what
    they come from: y (n, n_out) the target (class ids of a logistic probe),
    pred (levels, n, n_out) each item's held-out prediction, folds (n).
    target: task, answer or weights. Options: folds, l2, alpha, seed.
    shots (with max_shots, default shots): the prompt set of the condition with
    `shots` examples in a comparison up to max_shots (icl_linear_prompts_options):
    same_queries keeps the first `shots` of max_shots examples, so every
    condition has the same queries; False draws prompts of `shots` examples."""
    if target not in _lib.LINEAR_TARGETS:
        raise Error(ERR_INVALID_ARG, "target must be one of %s" % ", ".join(_lib.LINEAR_TARGETS))
    keep = []
    po = _prompts_options(family, tasks, prompts_per_task, n_examples, seed, keep)
    if shots is not None:
        if n_examples is not None:
            raise Error(ERR_INVALID_ARG, "give either n_examples or shots, not both")
        base = po
        po = _lib.ReprPromptsOptions()
        check(C.linear_prompts_options(ctypes.byref(base), _int(shots, "shots"),
                                       _int(shots if max_shots is None else max_shots, "max_shots"),
                                       int(bool(same_queries)), ctypes.byref(po)), "shots")
    lo = C.linear_options_default()
    _set(lo, opts, "linear")
    s = _site(family, site) or C.repr_site_default(family.ptr)
    prompts, rs = _lib.ReprPrompts(), _lib.ReprSet()
    check(C.repr_prompts_generate(family.ptr, ctypes.byref(po), ctypes.byref(prompts)), "prompts")
    try:
        check(C.repr_collect(model.ptr, prompts.prompts, prompts.n, ctypes.byref(s), 64, ctypes.byref(rs)),
              "collect")
        t, n = _lib.LINEAR_TARGETS[target], prompts.n
        n_out = max(1, C.linear_target_outputs(ctypes.byref(prompts), t))
        metric, y = np.empty(rs.levels, _F64), np.empty((n, n_out), _F64)
        pred, folds = np.empty((rs.levels, n, n_out), _F64), np.empty(n, _I32)
        chance = ctypes.c_double()
        check(C.linear_probe_levels_cv(ctypes.byref(rs), ctypes.byref(prompts), t, ctypes.byref(lo), ptr(metric),
                                       ctypes.byref(chance), ptr(y), ptr(pred), ptr(folds)), "linear probe")
        return {"metric": metric, "chance": chance.value, "labels": copy_out(prompts.labels, (n,), _I32),
                "X": copy_out(rs.X, (rs.levels, rs.n, rs.d), _F32), "score": copy_out(rs.score, (rs.n,), _F64),
                "y": y, "pred": pred, "folds": folds}
    finally:
        C.repr_set_free(ctypes.byref(rs))
        C.repr_prompts_free(ctypes.byref(prompts))


def td_from_repr(X, labels, **opts):
    """Task decodability of your own representations (icl_td_from_repr): X
    (levels, n, d), labels (n) class indices in [0, n_classes). Returns what
    decodability() returns. Options: k, pairwise_level, pca_dims."""
    x = as_float(X, "X", ndim=3)
    lab = as_int32(labels, "labels", shape=(x.shape[1],))
    if lab.size == 0 or lab.min() < 0:
        raise Error(ERR_INVALID_ARG, "labels must be class indices >= 0")
    rs = _lib.ReprSet(levels=x.shape[0], n=x.shape[1], d=x.shape[2], X=ptr(x), score=None)
    to = C.td_options_default()
    _set(to, opts, "td_from_repr")
    r = _lib.TdResult()
    check(C.td_from_repr(ctypes.byref(rs), ptr(lab), int(lab.max()) + 1, ctypes.byref(to), ctypes.byref(r)),
          "td_from_repr")
    try:
        return _td_out(r)
    finally:
        C.td_result_free(ctypes.byref(r))


def attention(model, family, tasks=None, prompts_per_task=None, n_examples=None, seed=1, from_=None, **opts):
    """Attention to roles and tasks (icl_attention_run), one dict per
    condition ("0-shot", "k-shot", "mixed"): shots, rows, role (L, NH+1,
    roles), task (L, NH+1, n_tasks), relevant / irrelevant / ratio
    ({query_source, example_source, task}: (L, NH+1)), score. Head index NH
    is the mean over heads. Options: mix_lambda, batch."""
    keep = []
    o = C.attn_options_default(family.ptr)
    o.prompts = _prompts_options(family, tasks, prompts_per_task, n_examples, seed, keep)
    if from_ is not None:
        o.from_ = positions(from_)
    _set(o, opts, "attention")
    r = _lib.AttnResult()
    check(C.attention_run(model.ptr, family.ptr, ctypes.byref(o), ctypes.byref(r)), "attention")
    try:
        out = {}
        for c in range(r.n_cond):
            st = r.stats[c]
            L, H, n = st.n_layer, st.n_head + 1, st.n_tasks
            R = len(_lib.ATTN_RATIO_NAMES)
            rel = copy_out(st.relevant, (R, L, H), _F64)
            irr = copy_out(st.irrelevant, (R, L, H), _F64)
            rat = copy_out(st.ratio, (R, L, H), _F64)
            out[r.names[c].value.decode()] = {
                "shots": r.shots[c], "rows": st.rows, "score": st.score,
                "role": copy_out(st.role, (L, H, _lib.ROLE_COUNT), _F64), "task": copy_out(st.task, (L, H, n), _F64),
                "ratio_rows": {k: st.ratio_rows[i] for i, k in enumerate(_lib.ATTN_RATIO_NAMES)},
                "relevant": {k: rel[i] for i, k in enumerate(_lib.ATTN_RATIO_NAMES)},
                "irrelevant": {k: irr[i] for i, k in enumerate(_lib.ATTN_RATIO_NAMES)},
                "ratio": {k: rat[i] for i, k in enumerate(_lib.ATTN_RATIO_NAMES)}}
        return out
    finally:
        C.attn_result_free(ctypes.byref(r))


def evaluate(model, family, tasks=None, **opts):
    """Loss and query metric against the number of examples (icl_eval_by_examples):
    tasks, loss and metric (n_tasks, n_k). Options: prompts_per_task,
    max_examples, batch, seed."""
    keep = []
    o = C.eval_options_default()
    _tasks_field(o, family, tasks, keep)
    _set(o, opts, "evaluate")
    r = _lib.EvalResult()
    check(C.eval_by_examples(model.ptr, family.ptr, ctypes.byref(o), ctypes.byref(r)), "evaluate")
    try:
        n, k = r.n_tasks, r.n_k
        return {"tasks": copy_out(r.tasks, (n,), np.intc).astype(_I32), "loss": copy_out(r.loss, (n, k), _F64),
                "metric": copy_out(r.metric, (n, k), _F64)}
    finally:
        C.eval_result_free(ctypes.byref(r))


def _eval_detail(d):
    """An icl_eval_detail as arrays: losses (n, T), score (n), loss_weights (n, T), prompt_task (n)."""
    n, T = d.n, d.T
    w, task = np.zeros((n, T), _F32), np.empty(n, _I32)
    for i in range(n):
        p = d.prompts[i]
        w[i, :p.T] = copy_out(p.loss_weights, (p.T,), _F32)
        task[i] = p.task
    return {"losses": copy_out(d.losses, (n, T), _F32), "score": copy_out(d.score, (n,), _F64),
            "loss_weights": w, "prompt_task": task}


def eval_tasks(model, family, prompts_per_task=100, seed=12345, detail=False):
    """The training objective of every task on fixed prompts of the family's
    default examples (icl_eval_tasks): loss and metric (num_tasks), the mean
    answers-only loss and the query accuracy (token) or squared error
    (vector). detail: also each prompt's losses (n, T), score (n),
    loss_weights (n, T) and prompt_task (n), task-major (icl_eval_tasks_detail)."""
    nt = family.num_tasks
    loss, metric = np.empty(nt, _F64), np.empty(nt, _F64)
    d = _lib.EvalDetail()
    check(C.eval_tasks_detail(model.ptr, family.ptr, _int(prompts_per_task, "prompts_per_task", 1),
                              _u64(seed, "seed"), ptr(loss), ptr(metric), ctypes.byref(d)), "eval_tasks")
    try:
        out = {"loss": loss, "metric": metric}
        if detail:
            out.update(_eval_detail(d))
        return out
    finally:
        C.eval_detail_free(ctypes.byref(d))


_FT_FIELDS = ("n_layers", "steps", "batch", "train_io", "n_examples")
_FT_EVAL_FIELDS = ("k", "eval_prompts", "eval_seed")


def finetune(model, family, tasks=None, prompts_per_task=None, seed=1, site=None, lr=None, keep_inputs=False,
             **opts):
    """Partial finetuning (icl_finetune_run): the original and copies with only
    the first / last n_layers blocks trained, in the order of `variants`:
    final_loss (3), train_loss (3, steps) (NaN for the original), td_mean (3,
    levels), best_level, td_best (3), td_best_task (3, n_td_tasks), loss and
    metric (3, num_tasks). tasks: the training tasks; prompts_per_task, seed
    and site: the decodability prompts (seed also the training data). Options:
    n_layers, steps, batch, train_io, n_examples (training); k, eval_prompts,
    eval_seed (evaluation). keep_inputs: also td_labels (n), td_X (3, levels,
    n, d) and the evaluation per prompt: eval_losses (3, n, T), eval_score
    (3, n), eval_loss_weights (n, T), eval_prompt_task (n)."""
    for k in opts:
        if k not in _FT_FIELDS + _FT_EVAL_FIELDS:
            raise Error(ERR_INVALID_ARG, "finetune has no option %r (options: %s)"
                        % (k, ", ".join(_FT_FIELDS + _FT_EVAL_FIELDS)))
    keep = []
    o, e = C.finetune_options_default(), C.finetune_eval_options_default()
    _tasks_field(o, family, tasks, keep)
    _set(o, {k: v for k, v in opts.items() if k in _FT_FIELDS}, "finetune")
    _set(e, {k: v for k, v in opts.items() if k in _FT_EVAL_FIELDS}, "finetune")
    o.seed = _u64(seed, "seed")
    if lr is not None:
        o.optim.lr = float(lr)
    po = _prompts_options(family, None, prompts_per_task, None, seed, keep)
    st = _site(family, site, 1)
    e.td_prompts = ctypes.pointer(po)
    e.site = ctypes.pointer(st) if st else None
    e.keep_inputs = int(bool(keep_inputs))
    r = _lib.FinetuneResult()
    check(C.finetune_run(model.ptr, family.ptr, ctypes.byref(o), ctypes.byref(e), ctypes.byref(r)), "finetune")
    try:
        V, Lv, nt, ntd = _lib.FT_VARIANTS, r.levels, r.n_tasks, r.n_td_tasks
        out = {"variants": [text(r.variant_names[v]) for v in range(V)], "final_loss": np.array(r.final_loss[:]),
               "train_loss": copy_out(r.train_loss, (V, r.steps), _F64),
               "td_mean": copy_out(r.td_mean, (V, Lv), _F64), "best_level": np.array(r.best_level[:], _I32),
               "td_best": np.array(r.td_best[:]), "td_best_task": copy_out(r.td_best_task, (V, ntd), _F64),
               "loss": copy_out(r.loss, (V, nt), _F64), "metric": copy_out(r.metric, (V, nt), _F64)}
        if keep_inputs:
            n = r.td_prompts.n
            out["td_labels"] = copy_out(r.td_prompts.labels, (n,), _I32)
            out["td_X"] = np.stack([copy_out(x.X, (x.levels, x.n, x.d), _F32) for x in r.td_repr])
            details = [_eval_detail(d) for d in r.eval]
            out["eval_losses"] = np.stack([d["losses"] for d in details])
            out["eval_score"] = np.stack([d["score"] for d in details])
            out["eval_loss_weights"], out["eval_prompt_task"] = details[0]["loss_weights"], details[0]["prompt_task"]
        return out
    finally:
        C.finetune_result_free(ctypes.byref(r))


__all__ = ["Lens", "answer_probs", "attention", "decodability", "eval_tasks", "evaluate", "finetune",
           "function_vectors", "head_ablation", "linear", "logit_lens", "residuals_at", "rsa", "superposition",
           "task_vectors", "td_from_repr", "tv_intervention"]
