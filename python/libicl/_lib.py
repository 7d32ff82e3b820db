"""The one place that knows libicl's C ABI: where the shared library is found,
the struct layouts (mirrors of include/icl/*.h) and the prototype of every C
function the package calls.

Every other module calls C through `C.<short name>`; the C symbol behind a
short name is written once, in the `_FUNCS` table below, so a renamed C
function is a one-line change here. A symbol the loaded library lacks does
not break the import: calling it raises libicl.Error(ICL_ERR_UNSUPPORTED).

Library search order (the first that exists wins):
  1. $LIBICL_PATH: the library file itself, or a directory holding libicl.so;
  2. the source tree's build/libicl.so (python/libicl/../../build), for an
     uninstalled checkout;
  3. PREFIX/lib/libicl.so for a package installed by `make install` under
     PREFIX/lib/pythonX.Y/dist-packages;
  4. the system loader: libicl.so.0, then libicl.so (ldconfig, LD_LIBRARY_PATH).
"""
import ctypes
import ctypes.util
import os
from ctypes import (CFUNCTYPE, POINTER, Structure, c_char, c_char_p, c_double, c_float, c_int, c_int32, c_long,
                    c_size_t, c_uint8, c_uint32, c_uint64, c_void_p)
from pathlib import Path

# ---- status codes (include/icl/status.h) ----

OK = 0
ERR_INVALID_ARG = 1
ERR_CONFIG = 2
ERR_SHAPE = 3
ERR_NOMEM = 4
ERR_IO = 5
ERR_FORMAT = 6
ERR_NUMERIC = 7
ERR_BACKEND = 8
ERR_STATE = 9
ERR_UNSUPPORTED = 10

STATUS_NAMES = ["ICL_OK", "ICL_ERR_INVALID_ARG", "ICL_ERR_CONFIG", "ICL_ERR_SHAPE", "ICL_ERR_NOMEM", "ICL_ERR_IO",
                "ICL_ERR_FORMAT", "ICL_ERR_NUMERIC", "ICL_ERR_BACKEND", "ICL_ERR_STATE", "ICL_ERR_UNSUPPORTED"]


class Error(Exception):
    """A libicl failure. `status` is the icl_status code (libicl.ERR_*),
    `status_name` its name, and the message is libicl's own (icl_last_error)
    or, for arguments the package rejects before calling C, the package's."""

    def __init__(self, status, message):
        self.status = int(status)
        self.status_name = STATUS_NAMES[self.status] if 0 <= self.status < len(STATUS_NAMES) else str(status)
        self.message = message
        super().__init__("%s: %s" % (self.status_name, message))


# ---- enums ----

MODE_TOKEN, MODE_VECTOR = 0, 1
BACKEND_CPU, BACKEND_CUDA = 0, 1
POINT_COUNT = 18
POINT_ATTN_SCORES, POINT_ATTN_PROBS, POINT_HEAD_OUT = 6, 7, 8
POINT_Q, POINT_K, POINT_V = 3, 4, 5
HEAD_SPLIT_POINTS = (POINT_Q, POINT_K, POINT_V, POINT_HEAD_OUT, POINT_ATTN_SCORES, POINT_ATTN_PROBS)
ROLE_NAMES = ["bos", "ex_input", "ex_sep", "ex_answer", "delim", "query_input", "query_sep", "query_answer", "pad"]
ROLE_QUERY_ANSWER = 7
LOSS_MASKS = {"query": 0, "answers": 1, "all": 2}
POS_ALL, POS_INDEX, POS_ROLE, POS_ROLE_NTH, POS_LAST = range(5)
IV_OPS = {"set": 0, "add": 1, "scale": 2, "zero": 3, "mean": 4, "resample": 5}
ABLATE_MODES = {"zero": 0, "mean": 1}
TV_MODES = {"replace": 0, "add": 1}
POOL_MODES = {"last": 0, "mean": 1, "max": 2}
LINEAR_TARGETS = {"task": 0, "answer": 1, "weights": 2}
ATTN_RATIO_NAMES = ["query_source", "example_source", "task"]
ATTN_MAX_CONDITIONS = 3
RSA_MAX_SHOTS = 16
RSA_MAX_HYP = 3
NPY_MAX_DIM = 8
FV_N_CONDITIONS = 3
FT_VARIANTS = 3
ROLE_COUNT = 9
# Streams of the prompt sets of the task- and function-vector probes (ICL_TV_STREAM_*, ICL_FV_STREAM_*).
TV_STREAM_DEMO, TV_STREAM_ZERO_SHOT = "task_vectors/demo", "task_vectors/zero_shot"
TV_STREAM_TARGET, TV_STREAM_INTERP = "task_vectors/target", "task_vectors/interp"
FV_STREAM_CLEAN, FV_STREAM_EVAL = "function_vectors/clean", "function_vectors/eval"

# ---- structs ----


class Config(Structure):
    _fields_ = [("mode", c_int), ("n_layer", c_int), ("d_model", c_int), ("n_head", c_int), ("d_ff", c_int),
                ("ctx", c_int), ("vocab_size", c_int), ("tie_embeddings", c_int), ("d_in", c_int), ("d_out", c_int),
                ("init_std", c_float)]


class Batch(Structure):
    _fields_ = [("B", c_int), ("T", c_int), ("tokens", POINTER(c_int32)), ("inputs", POINTER(c_float)),
                ("targets", POINTER(c_int32)), ("target_values", POINTER(c_float)),
                ("loss_weights", POINTER(c_float))]


class ParamInfo(Structure):
    _fields_ = [("name", c_char_p), ("ndim", c_int), ("shape", c_int * 2), ("offset", c_size_t), ("numel", c_size_t),
                ("group", c_int), ("layer", c_int), ("decay", c_int)]


class OptimConfig(Structure):
    _fields_ = [("lr", c_float), ("min_lr_frac", c_float), ("warmup_steps", c_int), ("total_steps", c_int),
                ("beta1", c_float), ("beta2", c_float), ("eps", c_float), ("weight_decay", c_float),
                ("grad_clip", c_float)]


class StepStats(Structure):
    _fields_ = [("step", c_long), ("loss", c_float), ("grad_norm", c_float), ("lr", c_float), ("graph", c_int)]


class Rng(Structure):
    _fields_ = [("key", c_uint64), ("counter", c_uint64), ("buf", c_uint32 * 4), ("buf_pos", c_int)]


BATCH_FN = CFUNCTYPE(c_int, c_void_p, c_long, c_int, POINTER(Rng), POINTER(Batch))
STEP_FN = CFUNCTYPE(c_int, c_void_p, POINTER(StepStats))
TEXT_FN = CFUNCTYPE(None, c_void_p, c_char_p)


STOP_FN = CFUNCTYPE(c_int, c_void_p)


class TrainLoopConfig(Structure):
    _fields_ = [("steps", c_long), ("grad_accum", c_int), ("next_batch", BATCH_FN), ("on_log", STEP_FN),
                ("log_every", c_long), ("on_eval", STEP_FN), ("eval_every", c_long), ("on_checkpoint", STEP_FN),
                ("checkpoint_every", c_long), ("user", c_void_p), ("should_stop", STOP_FN)]


class MetaEntry(Structure):
    _fields_ = [("key", c_char_p), ("value", c_char_p)]


class Array(Structure):
    _fields_ = [("dtype", c_int), ("ndim", c_int), ("shape", c_size_t * NPY_MAX_DIM), ("numel", c_size_t),
                ("data", c_void_p)]


class PointView(Structure):
    _fields_ = [("point", c_int), ("layer", c_int), ("B", c_int), ("T", c_int), ("width", c_int),
                ("row_stride", c_int), ("n_head", c_int), ("data", POINTER(c_float))]


HOOK_FN = CFUNCTYPE(c_int, c_void_p, c_void_p, POINTER(PointView))


class Positions(Structure):
    _fields_ = [("kind", c_int), ("index", c_int), ("role", c_int), ("nth", c_int)]


class RowLabels(Structure):
    _fields_ = [("roles", POINTER(c_int32)), ("row_len", POINTER(c_int32))]


class Capture(Structure):
    _fields_ = [("point", c_int), ("layer", c_int), ("head", c_int), ("width", c_int), ("n", c_size_t),
                ("data", POINTER(c_float)), ("rows", POINTER(c_int32)), ("positions", POINTER(c_int32))]


class CaptureSet(Structure):
    _fields_ = [("n", c_int), ("items", POINTER(Capture))]


class Intervention(Structure):
    _fields_ = [("point", c_int), ("layer", c_int), ("head", c_int), ("row", c_int), ("pos", Positions),
                ("op", c_int), ("vector", POINTER(c_float)), ("alpha", c_float), ("source_row", c_int),
                ("source", POINTER(c_float))]


class GenOptions(Structure):
    _fields_ = [("loss", c_int), ("active_dims", c_int), ("query_unseen", c_int), ("ctx", c_int)]


class Prompt(Structure):
    _fields_ = [("mode", c_int), ("T", c_int), ("n_examples", c_int), ("task", c_int), ("answer_len", c_int),
                ("d_in", c_int), ("d_out", c_int), ("query_pos", c_int), ("tokens", POINTER(c_int32)),
                ("targets", POINTER(c_int32)), ("inputs", POINTER(c_float)), ("target_values", POINTER(c_float)),
                ("loss_weights", POINTER(c_float)), ("roles", POINTER(c_int32)), ("example_ids", POINTER(c_int32)),
                ("task_ids", POINTER(c_int32))]


class MixedPrompt(Structure):
    _fields_ = [("prompt", Prompt), ("n_tasks", c_int), ("tasks", POINTER(c_int)), ("counts", POINTER(c_int)),
                ("answers", POINTER(c_int32)), ("answer_values", POINTER(c_float))]


class TaskBatchOptions(Structure):
    _fields_ = [("B", c_int), ("n_examples", c_int), ("tasks", POINTER(c_int)), ("n_tasks", c_int),
                ("pad_to", c_int), ("gen", GenOptions)]


class TaskBatch(Structure):
    _fields_ = [("batch", Batch), ("mode", c_int), ("B", c_int), ("T", c_int), ("d_in", c_int), ("d_out", c_int),
                ("tokens", POINTER(c_int32)), ("targets", POINTER(c_int32)), ("inputs", POINTER(c_float)),
                ("target_values", POINTER(c_float)), ("loss_weights", POINTER(c_float)),
                ("roles", POINTER(c_int32)), ("example_ids", POINTER(c_int32)), ("task_ids", POINTER(c_int32)),
                ("prompt_task", POINTER(c_int32)), ("prompt_len", POINTER(c_int32)),
                ("query_pos", POINTER(c_int32)), ("prompts", POINTER(Prompt)), ("cap_prompts", c_int)]


class SuperpositionOptions(Structure):
    _fields_ = [("n_prompts", c_int), ("n_examples", c_int), ("batch", c_int), ("beam", c_int), ("lens", c_int),
                ("solved", c_int)]


class SuperpositionStats(Structure):
    _fields_ = [("mean", POINTER(c_double)), ("sd", POINTER(c_double)), ("sorted", POINTER(c_double)),
                ("solved", POINTER(c_double)), ("other", c_double), ("kl_raw", c_double), ("kl_renorm", c_double),
                ("r", c_double), ("pk_exact", c_double)]


class SuperpositionResult(Structure):
    _fields_ = [("K", c_int), ("n", c_int), ("levels", c_int), ("answer_len", c_int), ("n_examples", c_int),
                ("tasks", POINTER(c_int)), ("counts", POINTER(c_int)), ("lambda_", POINTER(c_double)),
                ("collisions", c_int), ("P", POINTER(c_double)), ("pK", POINTER(c_double)),
                ("pK_exact", POINTER(c_uint8)), ("out", SuperpositionStats), ("lens_P", POINTER(c_double)),
                ("lens_pK", POINTER(c_double)), ("lens_pK_exact", POINTER(c_uint8)),
                ("lens", POINTER(SuperpositionStats))]


class TvOptions(Structure):
    _fields_ = [("tasks", POINTER(c_int)), ("n_tasks", c_int), ("n_prompts", c_int), ("n_examples", c_int),
                ("eval_prompts", c_int), ("target_examples", c_int), ("mode", c_int), ("add_raw", c_int),
                ("level", c_int), ("n_alpha", c_int), ("batch", c_int), ("seed", c_uint64)]


_PD = POINTER(c_double)


class TvResult(Structure):
    _fields_ = [("mode", c_int), ("n_tasks", c_int), ("n_levels", c_int), ("C", c_int), ("tasks", POINTER(c_int)),
                ("vectors", POINTER(c_float)), ("best_level", c_int), ("zs_p0", _PD), ("zs_acc0", _PD),
                ("zs_p", _PD), ("zs_acc", _PD), ("base_p", _PD), ("base_acc", _PD), ("mat_p", _PD),
                ("mat_acc", _PD), ("mat_p_own", _PD), ("mat_acc_own", _PD), ("n_pairs", c_int), ("n_alpha", c_int),
                ("interp_level", c_int), ("pairs", POINTER(c_int)), ("alphas", _PD), ("interp", _PD),
                ("base_mse", _PD), ("mat_mse", _PD), ("best_helps", c_int), ("mix_alpha", _PD),
                ("mix_offline", _PD)]


class FvOptions(Structure):
    _fields_ = [("tasks", POINTER(c_int)), ("n_tasks", c_int), ("n_prompts", c_int), ("n_examples", c_int),
                ("eval_prompts", c_int), ("top_k", c_int), ("fv_layer", c_int), ("fv_mid", c_int), ("batch", c_int),
                ("seed", c_uint64)]


class FvResult(Structure):
    _fields_ = [("n_tasks", c_int), ("L", c_int), ("NH", c_int), ("HS", c_int), ("C", c_int),
                ("tasks", POINTER(c_int)), ("head_means", POINTER(c_float)), ("aie", _PD), ("aie_mean", _PD),
                ("top_k", c_int), ("rank", POINTER(c_int)), ("heads", POINTER(c_int)), ("fv_layer", c_int),
                ("fv_mid", c_int), ("fv", POINTER(c_float)), ("acc", _PD), ("p", _PD), ("eval_prompts", c_int),
                ("acc_prompt", _PD), ("p_prompt", _PD), ("aie_p0", _PD), ("aie_p", _PD)]


class PromptSet(Structure):
    _fields_ = [("seed", c_uint64), ("stream", c_char_p), ("task", c_int), ("n_examples", c_int),
                ("shuffle_labels", c_int), ("ctx", c_int), ("loss", c_int)]


class ReprSite(Structure):
    _fields_ = [("pos", Positions), ("pool", c_int)]


class ReprPromptsOptions(Structure):
    _fields_ = [("tasks", POINTER(c_int)), ("n_tasks", c_int), ("prompts_per_task", c_int), ("n_examples", c_int),
                ("keep_examples", c_int), ("gen", GenOptions), ("seed", c_uint64)]


class ReprPrompts(Structure):
    _fields_ = [("n", c_int), ("n_tasks", c_int), ("prompts_per_task", c_int), ("tasks", POINTER(c_int)),
                ("labels", POINTER(c_int32)), ("prompts", POINTER(Prompt))]


class ReprSet(Structure):
    _fields_ = [("levels", c_int), ("n", c_int), ("d", c_int), ("X", POINTER(c_float)), ("score", _PD)]


class TdOptions(Structure):
    _fields_ = [("k", c_int), ("pairwise_level", c_int), ("pca_dims", c_int)]


class TdResult(Structure):
    _fields_ = [("levels", c_int), ("n_tasks", c_int), ("n", c_int), ("pca_dims", c_int), ("td", _PD),
                ("td_mean", _PD), ("best_level", c_int), ("pairwise_level", c_int), ("pairwise", _PD),
                ("score", _PD), ("pca", _PD), ("pca_var", _PD), ("td_weighted", _PD), ("td_weighted_mean", _PD)]


class RsaOptions(Structure):
    _fields_ = [("shots", c_int * RSA_MAX_SHOTS), ("n_shots", c_int), ("same_queries", c_int), ("n_perm", c_int),
                ("keep_rsm", c_int), ("labels", POINTER(c_int32)), ("seed", c_uint64)]


class RsaResult(Structure):
    _fields_ = [("n_shots", c_int), ("n_hyp", c_int), ("levels", c_int), ("n", c_int), ("shots", POINTER(c_int)),
                ("hyp_names", c_char_p * RSA_MAX_HYP), ("rho", _PD), ("p", _PD), ("score", _PD),
                ("task_labels", POINTER(c_int32)), ("rsm", _PD)]


class LinearOptions(Structure):
    _fields_ = [("folds", c_int), ("l2", c_double), ("alpha", c_double), ("seed", c_uint64)]


class AttnStats(Structure):
    _fields_ = [("n_layer", c_int), ("n_head", c_int), ("n_tasks", c_int), ("rows", c_long), ("role", _PD),
                ("task", _PD), ("ratio_rows", c_long * 3), ("relevant", _PD), ("irrelevant", _PD), ("ratio", _PD),
                ("score", c_double)]


class AttnOptions(Structure):
    _fields_ = [("prompts", ReprPromptsOptions), ("from_", Positions), ("mix_lambda", c_double), ("batch", c_int)]


class AttnResult(Structure):
    _fields_ = [("n_cond", c_int), ("names", (c_char * 16) * ATTN_MAX_CONDITIONS),
                ("shots", c_int * ATTN_MAX_CONDITIONS), ("stats", AttnStats * ATTN_MAX_CONDITIONS)]


class EvalOptions(Structure):
    _fields_ = [("prompts_per_task", c_int), ("max_examples", c_int), ("batch", c_int), ("seed", c_uint64),
                ("tasks", POINTER(c_int)), ("n_tasks", c_int), ("baselines", c_void_p), ("n_baselines", c_int)]


class EvalResult(Structure):
    _fields_ = [("mode", c_int), ("n_tasks", c_int), ("n_k", c_int), ("tasks", POINTER(c_int)), ("loss", _PD),
                ("metric", _PD), ("n_baselines", c_int), ("baseline_metric", _PD),
                ("baseline_names", POINTER(c_char * 32)), ("prompts_per_task", c_int)]


class EvalDetail(Structure):
    _fields_ = [("n", c_int), ("T", c_int), ("prompts_per_task", c_int), ("prompts", POINTER(Prompt)),
                ("losses", POINTER(c_float)), ("score", _PD)]


class FinetuneOptions(Structure):
    _fields_ = [("n_layers", c_int), ("steps", c_long), ("batch", c_int), ("optim", OptimConfig),
                ("train_io", c_int), ("tasks", POINTER(c_int)), ("n_tasks", c_int), ("n_examples", c_int),
                ("seed", c_uint64)]


class FinetuneEvalOptions(Structure):
    _fields_ = [("td_prompts", POINTER(ReprPromptsOptions)), ("site", POINTER(ReprSite)), ("k", c_int),
                ("eval_prompts", c_int), ("eval_seed", c_uint64), ("keep_inputs", c_int)]


class FinetuneResult(Structure):
    _fields_ = [("levels", c_int), ("n_td_tasks", c_int), ("n_tasks", c_int),
                ("variant_names", c_char_p * FT_VARIANTS), ("final_loss", c_double * FT_VARIANTS),
                ("td_mean", _PD), ("best_level", c_int * FT_VARIANTS), ("td_best", c_double * FT_VARIANTS),
                ("td_best_task", _PD), ("loss", _PD), ("metric", _PD), ("steps", c_long), ("train_loss", _PD),
                ("td_prompts", ReprPrompts), ("td_repr", ReprSet * FT_VARIANTS), ("eval", EvalDetail * FT_VARIANTS)]


# C struct name of each mirror, for the layout test (python/tests/test_abi.py).
STRUCTS = {
    "icl_config": Config, "icl_batch": Batch, "icl_param_info": ParamInfo, "icl_optim_config": OptimConfig,
    "icl_step_stats": StepStats, "icl_rng": Rng, "icl_train_loop_config": TrainLoopConfig,
    "icl_meta_entry": MetaEntry, "icl_array": Array, "icl_point_view": PointView, "icl_positions": Positions,
    "icl_row_labels": RowLabels, "icl_capture": Capture, "icl_capture_set": CaptureSet,
    "icl_intervention": Intervention, "icl_gen_options": GenOptions, "icl_prompt": Prompt,
    "icl_mixed_prompt": MixedPrompt, "icl_task_batch_options": TaskBatchOptions, "icl_task_batch": TaskBatch,
    "icl_superposition_options": SuperpositionOptions, "icl_superposition_stats": SuperpositionStats,
    "icl_superposition_result": SuperpositionResult, "icl_tv_options": TvOptions, "icl_tv_result": TvResult,
    "icl_fv_options": FvOptions, "icl_fv_result": FvResult, "icl_repr_site": ReprSite,
    "icl_repr_prompts_options": ReprPromptsOptions, "icl_repr_prompts": ReprPrompts, "icl_repr_set": ReprSet,
    "icl_td_options": TdOptions, "icl_td_result": TdResult, "icl_rsa_options": RsaOptions,
    "icl_rsa_result": RsaResult, "icl_linear_options": LinearOptions, "icl_attn_stats": AttnStats,
    "icl_attn_options": AttnOptions, "icl_attn_result": AttnResult, "icl_eval_options": EvalOptions,
    "icl_eval_result": EvalResult, "icl_prompt_set": PromptSet, "icl_eval_detail": EvalDetail,
    "icl_finetune_options": FinetuneOptions, "icl_finetune_eval_options": FinetuneEvalOptions,
    "icl_finetune_result": FinetuneResult,
}

# ---- functions: short name -> (C symbol, restype, argtypes) ----

_S = c_int  # icl_status
_P = c_void_p  # opaque handles (icl_model*, icl_task_family*, ...)
_PF = POINTER(c_float)
_PI = POINTER(c_int)
_PI32 = POINTER(c_int32)
_PU8 = POINTER(c_uint8)
_PIV = POINTER(Intervention)
_PTB = POINTER(TaskBatch)

_FUNCS = {
    # status.h
    "status_name": ("icl_status_name", c_char_p, [c_int]),
    "last_error": ("icl_last_error", c_char_p, []),
    # rng.h
    "rng_init": ("icl_rng_init", None, [POINTER(Rng), c_uint64, c_char_p]),
    "rng_split": ("icl_rng_split", None, [POINTER(Rng), POINTER(Rng), c_uint64]),
    # config.h
    "config_default": ("icl_config_default", Config, []),
    "config_validate": ("icl_config_validate", _S, [POINTER(Config)]),
    "config_num_params": ("icl_config_num_params", c_size_t, [POINTER(Config)]),
    # model.h
    "backend_parse": ("icl_backend_parse", _S, [c_char_p, _PI]),
    "backend_name": ("icl_backend_name", c_char_p, [c_int]),
    "backend_available": ("icl_backend_available", c_int, [c_int]),
    "model_create": ("icl_model_create", _S, [POINTER(_P), POINTER(Config), c_int, c_uint64]),
    "model_free": ("icl_model_free", None, [_P]),
    "model_config": ("icl_model_config", POINTER(Config), [_P]),
    "model_backend": ("icl_model_backend", c_int, [_P]),
    "model_num_params": ("icl_model_num_params", c_size_t, [_P]),
    "model_num_tensors": ("icl_model_num_tensors", c_int, [_P]),
    "model_tensor": ("icl_model_tensor", POINTER(ParamInfo), [_P, c_int]),
    "model_get_params": ("icl_model_get_params", _S, [_P, _PF, c_size_t]),
    "model_set_params": ("icl_model_set_params", _S, [_P, _PF, c_size_t]),
    "model_get_grads": ("icl_model_get_grads", _S, [_P, _PF, c_size_t]),
    "model_forward": ("icl_model_forward", _S, [_P, POINTER(Batch), _PF]),
    "model_zero_grad": ("icl_model_zero_grad", _S, [_P]),
    "model_backward": ("icl_model_backward", _S, [_P, c_float]),
    "model_outputs": ("icl_model_outputs", _S, [_P, _PF, c_size_t]),
    "model_losses": ("icl_model_losses", _S, [_P, _PF, c_size_t]),
    "model_probs": ("icl_model_probs", _S, [_P, _PF, c_size_t]),
    "model_point": ("icl_model_point", _S, [_P, c_int, c_int, POINTER(PointView)]),
    "model_point_copy": ("icl_model_point_copy", _S, [_P, c_int, c_int, _PF, c_size_t]),
    "model_set_hook": ("icl_model_set_hook", None, [_P, HOOK_FN, c_void_p]),
    # points.h / probe.h
    "point_name": ("icl_point_name", c_char_p, [c_int]),
    "point_alias": ("icl_point_alias", c_char_p, [c_int]),
    "point_is_per_layer": ("icl_point_is_per_layer", c_int, [c_int]),
    "point_parse": ("icl_point_parse", _S, [c_char_p, _PI, _PI]),
    "point_width": ("icl_point_width", _S, [_P, c_int, c_int, _PI]),
    "capture_plan_create": ("icl_capture_plan_create", _S, [POINTER(_P)]),
    "capture_plan_free": ("icl_capture_plan_free", None, [_P]),
    "capture_plan_add": ("icl_capture_plan_add", _S, [_P, c_int, c_int, c_int, Positions, _PI]),
    "capture_collect": ("icl_capture_collect", _S, [_P, _P, POINTER(RowLabels), POINTER(CaptureSet)]),
    "capture_set_free": ("icl_capture_set_free", None, [POINTER(CaptureSet)]),
    "intervention_make": ("icl_intervention_make", Intervention, [c_int, c_int, c_int]),
    "forward_with": ("icl_forward_with", _S, [_P, POINTER(Batch), POINTER(RowLabels), _PIV, c_int, _PF]),
    # train.h
    "optim_config_default": ("icl_optim_config_default", OptimConfig, []),
    "optim_config_validate": ("icl_optim_config_validate", _S, [POINTER(OptimConfig)]),
    "optim_lr_at": ("icl_optim_lr_at", c_float, [POINTER(OptimConfig), c_long]),
    "optimizer_create": ("icl_optimizer_create", _S, [POINTER(_P), _P, POINTER(OptimConfig)]),
    "optimizer_free": ("icl_optimizer_free", None, [_P]),
    "optimizer_step_count": ("icl_optimizer_step_count", c_long, [_P]),
    "optimizer_freeze": ("icl_optimizer_freeze", _S, [_P, c_int, c_int, c_int]),
    "optimizer_freeze_layers": ("icl_optimizer_freeze_layers", _S, [_P, c_int, c_int, c_int]),
    "optimizer_update": ("icl_optimizer_update", _S, [_P, POINTER(StepStats)]),
    "train_step": ("icl_train_step", _S, [_P, _P, POINTER(Batch), c_int, POINTER(StepStats)]),
    "train_loop": ("icl_train_loop", _S, [_P, _P, POINTER(Rng), POINTER(TrainLoopConfig)]),
    # checkpoint.h
    "checkpoint_save_with_meta": ("icl_checkpoint_save_with_meta", _S,
                                  [c_char_p, _P, _P, POINTER(Rng), POINTER(MetaEntry), c_int]),
    "checkpoint_read_meta": ("icl_checkpoint_read_meta", _S, [c_char_p, c_char_p, c_char_p, c_size_t]),
    "checkpoint_read_config": ("icl_checkpoint_read_config", _S, [c_char_p, POINTER(Config)]),
    "checkpoint_load_model": ("icl_checkpoint_load_model", _S, [c_char_p, c_int, POINTER(_P)]),
    "checkpoint_load_state": ("icl_checkpoint_load_state", _S, [c_char_p, _P, POINTER(Rng)]),
    # npy.h
    "npy_read": ("icl_npy_read", _S, [c_char_p, POINTER(Array)]),
    "npy_write": ("icl_npy_write", _S, [c_char_p, c_int, c_int, POINTER(c_size_t), c_void_p]),
    "array_free": ("icl_array_free", None, [POINTER(Array)]),
    # task.h
    "task_family_create": ("icl_task_family_create", _S, [POINTER(_P), c_char_p]),
    "task_family_free": ("icl_task_family_free", None, [_P]),
    "task_registry_count": ("icl_task_registry_count", c_int, []),
    "task_registry_name": ("icl_task_registry_name", c_char_p, [c_int]),
    "task_family_name": ("icl_task_family_name", c_char_p, [_P]),
    "task_family_spec": ("icl_task_family_spec", c_char_p, [_P]),
    "task_family_mode": ("icl_task_family_mode", c_int, [_P]),
    "task_family_num_tasks": ("icl_task_family_num_tasks", c_int, [_P]),
    "task_family_task_name": ("icl_task_family_task_name", c_char_p, [_P, c_int]),
    "task_family_find_task": ("icl_task_family_find_task", _S, [_P, c_char_p, _PI]),
    "task_family_vocab_size": ("icl_task_family_vocab_size", c_int, [_P]),
    "task_family_token_name": ("icl_task_family_token_name", c_char_p, [_P, c_int]),
    "task_family_input_len": ("icl_task_family_input_len", c_int, [_P]),
    "task_family_answer_len": ("icl_task_family_answer_len", c_int, [_P]),
    "task_family_d_in": ("icl_task_family_d_in", c_int, [_P]),
    "task_family_d_out": ("icl_task_family_d_out", c_int, [_P]),
    "task_family_dim": ("icl_task_family_dim", c_int, [_P]),
    "task_family_default_examples": ("icl_task_family_default_examples", c_int, [_P]),
    "task_family_prompt_len": ("icl_task_family_prompt_len", _S, [_P, c_int, _PI]),
    "task_family_fill_config": ("icl_task_family_fill_config", _S, [_P, POINTER(Config)]),
    "gen_options_default": ("icl_gen_options_default", GenOptions, []),
    "prompt_free": ("icl_prompt_free", None, [POINTER(Prompt)]),
    "prompt_render": ("icl_prompt_render", _S, [_P, POINTER(Prompt), c_char_p, c_size_t]),
    "task_mix_counts": ("icl_task_mix_counts", _S, [_PD, c_int, c_int, _PI]),
    "task_generate_mixed": ("icl_task_generate_mixed", _S,
                            [_P, _PI, _PD, c_int, c_int, POINTER(GenOptions), POINTER(Rng), POINTER(MixedPrompt)]),
    "mixed_prompt_free": ("icl_mixed_prompt_free", None, [POINTER(MixedPrompt)]),
    "task_batch_options_default": ("icl_task_batch_options_default", TaskBatchOptions, []),
    "task_batch_generate": ("icl_task_batch_generate", _S,
                            [_P, POINTER(TaskBatchOptions), POINTER(Rng), _PTB]),
    "task_batch_pack": ("icl_task_batch_pack", _S, [_PTB, POINTER(POINTER(Prompt)), c_int, c_int]),
    "task_batch_free": ("icl_task_batch_free", None, [_PTB]),
    # readout.h, lens.h
    "answer_probs": ("icl_answer_probs", _S, [_P, _PTB, _PI32, c_int, _PIV, c_int, _PD, _PD]),
    "residuals_at": ("icl_residuals_at", _S, [_P, _PTB, Positions, _PIV, c_int, _PF]),
    "lens_create": ("icl_lens_create", _S, [_P, POINTER(_P)]),
    "lens_free": ("icl_lens_free", None, [_P]),
    "lens_levels": ("icl_lens_levels", c_int, [_P]),
    "lens_apply": ("icl_lens_apply", _S, [_P, _PF, c_int, _PD]),
    "lens_answer_probs": ("icl_lens_answer_probs", _S, [_P, _P, _PTB, _PI32, c_int, _PIV, c_int, _PD]),
    "head_means_create": ("icl_head_means_create", _S, [_P, c_int, POINTER(_P)]),
    "head_means_free": ("icl_head_means_free", None, [_P]),
    "head_means_add": ("icl_head_means_add", _S, [_P, _P, _PTB]),
    "head_ablation": ("icl_head_ablation", _S, [_P, _PTB, c_int, c_int, c_int, _P, _PD, _PU8]),
    "head_ablation_errors": ("icl_head_ablation_errors", _S, [_P, _PTB, c_int, c_int, c_int, _P, _PD]),
    # superposition.h
    "superposition_options_default": ("icl_superposition_options_default", SuperpositionOptions, []),
    "superposition_run": ("icl_superposition_run", _S,
                          [_P, _P, _PI, _PD, c_int, POINTER(SuperpositionOptions), POINTER(Rng),
                           POINTER(SuperpositionResult)]),
    "superposition_result_free": ("icl_superposition_result_free", None, [POINTER(SuperpositionResult)]),
    # task_vectors.h
    "query_answers": ("icl_query_answers", _S, [_P, _PTB, c_int, _PI32]),
    "tv_intervention": ("icl_tv_intervention", _S, [_P, c_int, c_int, _PF, _PIV]),
    "tv_options_default": ("icl_tv_options_default", TvOptions, [_P]),
    "task_vectors_run": ("icl_task_vectors_run", _S, [_P, _P, POINTER(TvOptions), POINTER(TvResult)]),
    "tv_result_free": ("icl_tv_result_free", None, [POINTER(TvResult)]),
    "fv_options_default": ("icl_fv_options_default", FvOptions, [_P]),
    "function_vectors_run": ("icl_function_vectors_run", _S, [_P, _P, POINTER(FvOptions), POINTER(FvResult)]),
    "fv_result_free": ("icl_fv_result_free", None, [POINTER(FvResult)]),
    "prompt_set_batch": ("icl_prompt_set_batch", _S, [_P, POINTER(PromptSet), c_int, c_int, _PTB]),
    # representations.h
    "repr_site_default": ("icl_repr_site_default", ReprSite, [_P]),
    "repr_site_parse": ("icl_repr_site_parse", _S, [_P, c_char_p, c_char_p, c_char_p, c_int, POINTER(ReprSite)]),
    "repr_prompts_options_default": ("icl_repr_prompts_options_default", ReprPromptsOptions, []),
    "repr_prompts_generate": ("icl_repr_prompts_generate", _S,
                              [_P, POINTER(ReprPromptsOptions), POINTER(ReprPrompts)]),
    "repr_prompts_free": ("icl_repr_prompts_free", None, [POINTER(ReprPrompts)]),
    "repr_collect": ("icl_repr_collect", _S, [_P, POINTER(Prompt), c_int, POINTER(ReprSite), c_int,
                                              POINTER(ReprSet)]),
    "repr_set_free": ("icl_repr_set_free", None, [POINTER(ReprSet)]),
    "td_options_default": ("icl_td_options_default", TdOptions, []),
    "decodability_run": ("icl_decodability_run", _S,
                          [_P, _P, POINTER(ReprPromptsOptions), POINTER(ReprSite), POINTER(TdOptions),
                           POINTER(TdResult)]),
    "td_result_free": ("icl_td_result_free", None, [POINTER(TdResult)]),
    "td_from_repr": ("icl_td_from_repr", _S, [POINTER(ReprSet), _PI32, c_int, POINTER(TdOptions), POINTER(TdResult)]),
    "rsa_options_default": ("icl_rsa_options_default", RsaOptions, [_P]),
    "rsa_run": ("icl_rsa_run", _S, [_P, _P, POINTER(ReprPromptsOptions), POINTER(ReprSite), POINTER(RsaOptions),
                                        POINTER(RsaResult)]),
    "rsa_result_free": ("icl_rsa_result_free", None, [POINTER(RsaResult)]),
    "linear_options_default": ("icl_linear_options_default", LinearOptions, []),
    "linear_probe_levels": ("icl_linear_probe_levels", _S,
                            [POINTER(ReprSet), POINTER(ReprPrompts), c_int, POINTER(LinearOptions), _PD, _PD]),
    "linear_probe_levels_cv": ("icl_linear_probe_levels_cv", _S,
                               [POINTER(ReprSet), POINTER(ReprPrompts), c_int, POINTER(LinearOptions), _PD, _PD, _PD,
                                _PD, _PI32]),
    "linear_target_outputs": ("icl_linear_target_outputs", c_int, [POINTER(ReprPrompts), c_int]),
    "linear_prompts_options": ("icl_linear_prompts_options", _S,
                               [POINTER(ReprPromptsOptions), c_int, c_int, c_int, POINTER(ReprPromptsOptions)]),
    "attn_options_default": ("icl_attn_options_default", AttnOptions, [_P]),
    "attention_run": ("icl_attention_run", _S, [_P, _P, POINTER(AttnOptions), POINTER(AttnResult)]),
    "attn_result_free": ("icl_attn_result_free", None, [POINTER(AttnResult)]),
    # eval.h
    "eval_options_default": ("icl_eval_options_default", EvalOptions, []),
    "eval_by_examples": ("icl_eval_by_examples", _S, [_P, _P, POINTER(EvalOptions), POINTER(EvalResult)]),
    "eval_result_free": ("icl_eval_result_free", None, [POINTER(EvalResult)]),
    "eval_tasks_detail": ("icl_eval_tasks_detail", _S, [_P, _P, c_int, c_uint64, _PD, _PD, POINTER(EvalDetail)]),
    "eval_detail_free": ("icl_eval_detail_free", None, [POINTER(EvalDetail)]),
    # finetune.h
    "finetune_options_default": ("icl_finetune_options_default", FinetuneOptions, []),
    "finetune_eval_options_default": ("icl_finetune_eval_options_default", FinetuneEvalOptions, []),
    "finetune_run": ("icl_finetune_run", _S,
                     [_P, _P, POINTER(FinetuneOptions), POINTER(FinetuneEvalOptions), POINTER(FinetuneResult)]),
    "finetune_result_free": ("icl_finetune_result_free", None, [POINTER(FinetuneResult)]),
}


def _candidates():
    env = os.environ.get("LIBICL_PATH")
    if env:
        p = Path(env)
        yield p / "libicl.so" if p.is_dir() else p
        return
    here = Path(__file__).resolve().parent
    yield here.parent.parent / "build" / "libicl.so"
    # PREFIX/lib/pythonX.Y/dist-packages/libicl -> PREFIX/lib
    yield here.parent.parent.parent / "libicl.so"
    yield here.parent.parent.parent / "libicl.so.0"


def _load():
    tried = []
    for p in _candidates():
        tried.append(str(p))
        if p.exists():
            return ctypes.CDLL(str(p)), str(p)
    if os.environ.get("LIBICL_PATH"):
        raise ImportError("libicl: LIBICL_PATH=%s does not name libicl.so" % os.environ["LIBICL_PATH"])
    for name in ("libicl.so.0", "libicl.so", ctypes.util.find_library("icl")):
        if not name:
            continue
        tried.append(name)
        try:
            return ctypes.CDLL(name), name
        except OSError:
            pass
    raise ImportError("libicl: cannot find libicl.so (tried %s); build it with `make` or set LIBICL_PATH"
                      % ", ".join(tried))


class _Missing:
    """Stands in for a C function the loaded library does not export."""

    def __init__(self, symbol):
        self.symbol = symbol

    def __call__(self, *args):
        raise Error(ERR_UNSUPPORTED, "the loaded libicl (%s) has no function %s" % (path, self.symbol))


class _Functions:
    pass


dll, path = _load()
C = _Functions()
for _short, (_sym, _res, _args) in _FUNCS.items():
    try:
        _f = getattr(dll, _sym)
    except AttributeError:
        setattr(C, _short, _Missing(_sym))
        continue
    _f.restype = _res
    _f.argtypes = _args
    setattr(C, _short, _f)


def symbols():
    """The C symbols the package binds, as a sorted list."""
    return sorted(sym for sym, _, _ in _FUNCS.values())


def last_error():
    msg = C.last_error()
    return msg.decode("utf-8", "replace") if msg else ""


def check(status, what=None):
    """Raise Error with libicl's message unless status is ICL_OK."""
    if status != OK:
        msg = last_error()
        raise Error(status, "%s: %s" % (what, msg) if what else msg)


def cstr(s, what="string"):
    if isinstance(s, bytes):
        b = s
    elif isinstance(s, (str, os.PathLike)):
        b = os.fsencode(s)
    else:
        raise Error(ERR_INVALID_ARG, "%s must be a str, got %s" % (what, type(s).__name__))
    if b"\0" in b:
        raise Error(ERR_INVALID_ARG, "%s contains a NUL byte" % what)
    return b
