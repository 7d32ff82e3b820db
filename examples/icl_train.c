/* icl train: train a model on a toy task (copy, reverse) or an ICL task family.
 * Every output path is checked before the first step, and SIGINT / SIGTERM
 * end training after the current step with a resumable checkpoint. */
#define _DEFAULT_SOURCE /* realpath */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cjson/cJSON.h>
#include "icl/dist.h"
#include "icl/eval.h"
#include "icl/task.h"
#include "icl_cli.h"

#define HELP_SHOWN (-1)
#define MAX_TRAIN_OPTIONS 48

static const char *const train_usage =
    "usage: icl train (--out DIR | --save FILE) [options]\n\n"
    "Train a transformer; prints step, loss, tokens/s and ETA.\n\n"
    "--out DIR must be new or empty, unless --resume reads a checkpoint inside it (the run goes on\n"
    "there: train_log.csv is appended to, the model and eval.csv are replaced) or --force is given.\n"
    "--resume takes the task, architecture and optimizer settings from the checkpoint; --task and\n"
    "architecture options may be repeated but must agree with it, and --steps (default: the\n"
    "checkpoint's run length) must be above the checkpoint's step.\n"
    "SIGINT (Ctrl-C) or SIGTERM stops after the current step and saves a resumable checkpoint into\n"
    "the checkpoint directory (else DIR/checkpoints, else beside --save), prints the command that\n"
    "resumes it and exits 130 (SIGINT) or 143 (SIGTERM); a second Ctrl-C stops at once.\n"
    "Exit status: 0 done, 1 runtime error, 2 bad options, 130/143 interrupted.";

/* The options of the command line. */
typedef struct {
    icl_config cfg;
    icl_optim_config oc;
    const char *task, *save, *resume, *backend_name, *csv_path, *checkpoint_dir, *out_dir, *task_log, *eval_out;
    int eval_prompts, curriculum, short_examples, symbols, length, batch, accum, examples, untied, quiet;
    int no_graphs, warmup, force, no_mpi;
    long short_steps, eval_every, steps, seed, log_every, checkpoint_every;
    icl_backend_kind backend;
    int argc;
    char **argv;
    cli_option opts[MAX_TRAIN_OPTIONS];
    int n_opts;
    long resume_step;        /* the checkpoint's icl.step */
    char resume_task[1024];  /* the checkpoint's user.task */
    char out_paths[5][4096]; /* the files of --out */
} train_args;

enum { OUT_MODEL, OUT_TRAIN_LOG, OUT_TASK_LOG, OUT_EVAL, OUT_CHECKPOINTS };
static const char *const out_names[5] = {"model.safetensors", "train_log.csv", "task_log.csv", "eval.csv",
                                         "checkpoints"};

typedef struct {
    const train_args *a;
    /* data: a toy task, or a task family */
    icl_toy_task toy;
    int32_t *toy_tokens, *toy_targets;
    float *toy_weights;
    icl_task_family *family;
    icl_task_batch_options batch_opt;
    icl_task_batch tb;
    int batch;
    int T;              /* positions of the longest prompt */
    int use_curriculum; /* Garg's growing dimensions and prompt length, or a short-prompt phase */
    icl_curriculum curriculum;
    /* bookkeeping for the callbacks */
    icl_model *model;
    icl_optimizer *opt;
    icl_rng data_rng;
    long total_steps, first_step;
    double tokens_done; /* positions trained on by this process, for tokens/s */
    double t_start;
    const char *checkpoint_dir;
    FILE *csv, *task_csv;
    int eval_prompts;
    int quiet;
    icl_dist *dist; /* the ranks of mpirun, NULL alone */
} train_run;

/* Set by the signal handler, read between steps. */
static volatile sig_atomic_t stop_signal = 0;

static void on_signal(int sig) { stop_signal = sig; }

/* Under mpirun every rank must stop at the same step, or the others wait for
 * it forever: the ranks agree (one small exchange per step). */
static int should_stop(void *user) {
    const train_run *r = user;
    int local = stop_signal != 0, any = local;
    if (r->dist && icl_dist_any(r->dist, local, &any) != ICL_OK)
        return 1;
    return any;
}

/* SA_RESETHAND: a second signal finds the default action and ends the process. */
static void catch_stop_signals(int enable) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = enable ? on_signal : SIG_DFL;
    sa.sa_flags = enable ? SA_RESETHAND | SA_RESTART : 0;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

static icl_status next_batch(void *user, long step, int micro, icl_rng *rng, icl_batch *batch) {
    (void)micro;
    train_run *r = user;
    icl_status s = ICL_OK;
    if (!r->family) {
        s = icl_toy_fill(&r->toy, rng, r->batch, r->toy_tokens, r->toy_targets, r->toy_weights, batch);
    } else {
        if (r->use_curriculum)
            s = icl_curriculum_at(&r->curriculum, step - 1, &r->batch_opt.gen.active_dims, &r->batch_opt.n_examples);
        if (s == ICL_OK)
            s = icl_task_batch_generate(r->family, &r->batch_opt, rng, &r->tb);
        if (s == ICL_OK)
            *batch = r->tb.batch;
    }
    if (s == ICL_OK)
        r->tokens_done += (double)batch->B * batch->T;
    return s;
}

static icl_status on_log(void *user, const icl_step_stats *st) {
    train_run *r = user;
    double elapsed = cli_now() - r->t_start;
    double done = (double)(st->step - r->first_step + 1);
    double tok_s = r->tokens_done / elapsed;
    double eta = elapsed / done * (double)(r->total_steps - st->step);
    if (!r->quiet)
        fprintf(stderr, "step %6ld/%ld | loss %.4f | lr %.2e | |g| %.3f | %8.0f tok/s | ETA %02d:%02d\n", st->step,
            r->total_steps, st->loss, st->lr, st->grad_norm, tok_s, (int)(eta / 60), (int)fmod(eta, 60.0));
    if (r->csv) {
        fprintf(r->csv, "%ld,%.6f,%.6e,%.6f,%.1f\n", st->step, st->loss, st->lr, st->grad_norm, elapsed);
        fflush(r->csv);
    }
    return ICL_OK;
}

/* Per-task loss and query metric on a fixed set of prompts: the training-dynamics curves. */
static icl_status on_eval(void *user, const icl_step_stats *st) {
    train_run *r = user;
    int n = icl_task_family_num_tasks(r->family);
    double loss[256], metric[256];
    icl_status s = icl_eval_tasks(r->model, r->family, r->eval_prompts, 777, loss, metric);
    for (int t = 0; s == ICL_OK && t < n && t < 256; t++)
        fprintf(r->task_csv, "%ld,%s,%.6f,%.6f\n", st->step, icl_task_family_task_name(r->family, t), loss[t],
                metric[t]);
    fflush(r->task_csv);
    return s;
}

/* The checkpoint names its task: the family spec, or the toy task and its
 * string length (the alphabet follows from the vocabulary). */
static icl_status save_run(const train_run *r, const char *path) {
    char length[32];
    snprintf(length, sizeof length, "%d", r->toy.length);
    icl_meta_entry meta[2] = {{"user.task", ""}, {"user.length", length}};
    if (r->family)
        meta[0].value = icl_task_family_spec(r->family);
    else
        meta[0].value = r->toy.kind == ICL_TOY_COPY ? "copy" : "reverse";
    return icl_checkpoint_save_with_meta(path, r->model, r->opt, &r->data_rng, meta, r->family ? 1 : 2);
}

static icl_status on_checkpoint(void *user, const icl_step_stats *st) {
    train_run *r = user;
    char path[4096];
    snprintf(path, sizeof path, "%s/step_%07ld.safetensors", r->checkpoint_dir, st->step);
    return save_run(r, path);
}

static FILE *open_csv(const char *path, const char *header) {
    FILE *f = fopen(path, "a");
    if (!f)
        perror(path);
    else if (ftell(f) == 0)
        fputs(header, f);
    return f;
}

/* Final evaluation against the number of in-context examples, with baselines for vector families. */
static int final_eval(train_run *r, const char *path) {
    icl_baseline b[CLI_N_BASELINES];
    icl_eval_options o = icl_eval_options_default();
    o.prompts_per_task = r->eval_prompts;
    if (icl_task_family_mode(r->family) == ICL_MODE_VECTOR) {
        o.n_baselines = cli_default_baselines(r->family, b);
        o.baselines = b;
    }
    icl_eval_result res;
    icl_status s = icl_eval_by_examples(r->model, r->family, &o, &res);
    if (s == ICL_OK)
        s = icl_eval_write_csv(&res, r->family, path);
    icl_eval_result_free(&res);
    return s == ICL_OK ? 0 : cli_fail("final evaluation", s);
}

/* --short-prompts N --short-steps S: the first S steps train on prompts of N
 * examples, the rest on full-length ones (icl_curriculum_short_prompts). */
static int setup_short_prompts(train_run *r, int short_examples, long short_steps) {
    /* Vector families keep every input dimension active (token families ignore it). */
    const int dims = icl_task_family_dim(r->family) > 0 ? icl_task_family_dim(r->family) : 1;
    if (icl_curriculum_short_prompts(dims, short_examples, short_steps, r->batch_opt.n_examples, &r->curriculum) !=
        ICL_OK) {
        fprintf(stderr, "icl train: --short-prompts/--short-steps: %s\n", icl_last_error());
        return 1;
    }
    r->use_curriculum = 1;
    return 0;
}

/* A failure caused by an option's value: printed like cli_fail, exit status 2. */
static int usage_fail(const char *what, icl_status s) {
    cli_fail(what, s);
    return 2;
}

static void option_table(train_args *a) {
    const cli_option opts[] = {
        {"--task", OPT_STRING, &a->task, "copy | reverse | an ICL task family spec (see docs/tasks.md) [copy]"},
        {"--symbols", OPT_INT, &a->symbols, "toy tasks: alphabet size [10]"},
        {"--length", OPT_INT, &a->length, "toy tasks: string length [8]"},
        {"--examples", OPT_INT, &a->examples, "task families: in-context examples per prompt [family default]"},
        {"--curriculum", OPT_FLAG, &a->curriculum, "vector families: Garg's curriculum (dimensions and examples grow)"},
        {"--short-prompts", OPT_INT, &a->short_examples, "task families: examples per prompt during --short-steps [off]"},
        {"--short-steps", OPT_LONG, &a->short_steps, "task families: steps trained on --short-prompts prompts"},
        {"--steps", OPT_LONG, &a->steps, "optimizer steps [1000; on --resume the checkpoint's run length]"},
        {"--batch", OPT_INT, &a->batch, "prompts per micro-batch, split over the ranks under mpirun [32]"},
        {"--accum", OPT_INT, &a->accum, "micro-batches per step (gradient accumulation) [1]"},
        {"--layers", OPT_INT, &a->cfg.n_layer, "transformer blocks [2]"},
        {"--d-model", OPT_INT, &a->cfg.d_model, "residual width [64]"},
        {"--heads", OPT_INT, &a->cfg.n_head, "attention heads [4]"},
        {"--d-ff", OPT_INT, &a->cfg.d_ff, "MLP width [4*d_model]"},
        {"--ctx", OPT_INT, &a->cfg.ctx, "context length [at least the prompt length]"},
        {"--init-std", OPT_FLOAT, &a->cfg.init_std, "std of the initial weight matrices [0 = 1/sqrt(d_model)]"},
        {"--untied", OPT_FLAG, &a->untied, "separate lm_head instead of the tied token embedding"},
        {"--lr", OPT_FLOAT, &a->oc.lr, "peak learning rate [1e-3]"},
        {"--min-lr-frac", OPT_FLOAT, &a->oc.min_lr_frac, "final lr as a fraction of the peak [0.1]"},
        {"--warmup", OPT_INT, &a->warmup, "warm-up steps [min(100, steps/10)]"},
        {"--beta1", OPT_FLOAT, &a->oc.beta1, "Adam beta1 [0.9]"},
        {"--beta2", OPT_FLOAT, &a->oc.beta2, "Adam beta2 [0.99]"},
        {"--wd", OPT_FLOAT, &a->oc.weight_decay, "weight decay on matrices [0.01]"},
        {"--clip", OPT_FLOAT, &a->oc.grad_clip, "global gradient-norm clip, 0 = off [1.0]"},
        {"--seed", OPT_LONG, &a->seed, "seed of the initialisation and the data [1]"},
        {"--out", OPT_STRING, &a->out_dir, "directory for model.safetensors, train_log.csv and (task families) "
                                             "task_log.csv, eval.csv, checkpoints/"},
        {"--force", OPT_FLAG, &a->force, "reuse a non-empty --out: first delete its model.safetensors, train_log.csv, "
                                         "task_log.csv, eval.csv and checkpoints/step_*.safetensors"},
        {"--save", OPT_STRING, &a->save, "write the final checkpoint here"},
        {"--eval-every", OPT_LONG, &a->eval_every, "task families: steps between per-task evaluations [0 = off]"},
        {"--eval-prompts", OPT_INT, &a->eval_prompts, "task families: prompts per task in evaluations [64]"},
        {"--task-log", OPT_STRING, &a->task_log, "task families: step,task,loss,metric CSV of the evaluations"},
        {"--eval-out", OPT_STRING, &a->eval_out, "task families: final accuracy/MSE by number of examples CSV"},
        {"--checkpoint-dir", OPT_STRING, &a->checkpoint_dir, "directory for periodic checkpoints"},
        {"--checkpoint-every", OPT_LONG, &a->checkpoint_every, "steps between periodic checkpoints [0 = off]"},
        {"--resume", OPT_STRING, &a->resume, "continue from a checkpoint saved with optimizer state"},
        {"--log-every", OPT_LONG, &a->log_every, "steps between progress lines [50]"},
        {"--log-csv", OPT_STRING, &a->csv_path, "append step,loss,lr,grad_norm,seconds rows to this CSV"},
        {"--backend", OPT_STRING, &a->backend_name, "cpu | cuda [$ICL_BACKEND or cpu]"},
        {"--no-graphs", OPT_FLAG, &a->no_graphs, "cuda: launch every kernel instead of replaying a recorded step"},
        {"--quiet", OPT_FLAG, &a->quiet, "no progress lines"},
        {"--no-mpi", OPT_FLAG, &a->no_mpi, "under mpirun: train in this process alone, not data-parallel"},
    };
    _Static_assert(sizeof opts / sizeof opts[0] <= MAX_TRAIN_OPTIONS, "room for the options");
    memcpy(a->opts, opts, sizeof opts);
    a->n_opts = (int)(sizeof opts / sizeof opts[0]);
}

static const cli_range train_ranges[] = {
    {"--symbols", 2, 1 << 24},   {"--length", 1, 1 << 24},       {"--examples", 1, INT_MAX},
    {"--short-prompts", 0, INT_MAX}, {"--short-steps", 1, INT_MAX}, {"--steps", 1, INT_MAX},
    {"--batch", 1, INT_MAX},     {"--accum", 1, ICL_MAX_GRAD_ACCUM}, {"--layers", 1, 1 << 16},
    {"--d-model", 1, 1 << 24},   {"--heads", 1, 1 << 24},        {"--d-ff", 0, 1 << 24},
    {"--ctx", 1, 1 << 24},       {"--init-std", 0, HUGE_VAL},    {"--lr", 0, HUGE_VAL},
    {"--min-lr-frac", 0, 1},     {"--warmup", 0, INT_MAX},       {"--beta1", 0, 1},
    {"--beta2", 0, 1},           {"--wd", 0, HUGE_VAL},          {"--clip", 0, HUGE_VAL},
    {"--eval-every", 0, LONG_MAX}, {"--eval-prompts", 1, INT_MAX}, {"--checkpoint-every", 0, LONG_MAX},
    {"--log-every", 0, LONG_MAX},
};

/* The command line into a, defaults first. 0 to go on, HELP_SHOWN, or 2. */
static int parse_options(train_args *a, int argc, char **argv) {
    memset(a, 0, sizeof *a);
    a->cfg = icl_config_default();
    a->oc = icl_optim_config_default();
    a->task = "copy";
    a->eval_prompts = 64;
    a->short_examples = -1;
    a->symbols = 10;
    a->length = 8;
    a->batch = 32;
    a->accum = 1;
    a->steps = 1000;
    a->seed = 1;
    a->log_every = 50;
    a->warmup = -1;
    a->argc = argc;
    a->argv = argv;
    option_table(a);
    int rc = cli_parse_ranged(argc, argv, 2, a->opts, a->n_opts, train_ranges,
                              (int)(sizeof train_ranges / sizeof train_ranges[0]), train_usage, NULL, 0, NULL);
    if (rc)
        return rc < 0 ? 2 : HELP_SHOWN;
    if (cli_backend(a->backend_name, &a->backend))
        return 2;
    a->cfg.tie_embeddings = !a->untied;
    return 0;
}

static int given(const train_args *a, const char *name) {
    return cli_option_given(a->argc, a->argv, 2, a->opts, a->n_opts, name);
}

/* The data of --task into r and the model config it implies into cfg (mode,
 * vocabulary or widths, and a context that holds the longest prompt). */
static int setup_data(train_run *r, const train_args *a, icl_config *cfg) {
    icl_toy_kind kind;
    if (icl_toy_parse(a->task, &kind) == ICL_OK) {
        r->toy = (icl_toy_task){kind, a->symbols, a->length};
        r->T = icl_toy_seq_len(&r->toy);
        cfg->mode = ICL_MODE_TOKEN;
        cfg->vocab_size = icl_toy_vocab_size(&r->toy);
        if (cfg->ctx < r->T)
            cfg->ctx = r->T;
        if (a->curriculum || a->short_examples >= 0) {
            fprintf(stderr, "icl train: --curriculum and --short-prompts need a task family\n");
            return 2;
        }
        return 0;
    }
    icl_status s = icl_task_family_create(&r->family, a->task);
    if (s != ICL_OK)
        return usage_fail("--task (neither copy, reverse nor a task family spec)", s);
    r->batch_opt = icl_task_batch_options_default();
    r->batch_opt.B = r->batch;
    r->batch_opt.n_examples = a->examples > 0 ? a->examples : icl_task_family_default_examples(r->family);
    if ((s = icl_task_family_prompt_len(r->family, r->batch_opt.n_examples, &r->T)) != ICL_OK)
        return usage_fail("--examples", s);
    if ((s = icl_task_family_fill_config(r->family, cfg)) != ICL_OK)
        return cli_fail("task family", s);
    if (cfg->ctx < r->T)
        cfg->ctx = r->T;
    if (a->curriculum && a->short_examples >= 0) {
        fprintf(stderr, "icl train: choose --curriculum or --short-prompts, not both\n");
        return 2;
    }
    if (a->short_examples >= r->batch_opt.n_examples) {
        fprintf(stderr, "icl train: --short-prompts %d must be below the %d examples of a full prompt\n",
                a->short_examples, r->batch_opt.n_examples);
        return 2;
    }
    if (a->short_examples >= 0)
        return setup_short_prompts(r, a->short_examples, a->short_steps);
    if (a->curriculum) {
        if (icl_task_family_mode(r->family) != ICL_MODE_VECTOR) {
            fprintf(stderr, "icl train: --curriculum needs a vector task family\n");
            return 2;
        }
        r->use_curriculum = 1;
        if ((s = icl_curriculum_default(icl_task_family_dim(r->family), r->batch_opt.n_examples, &r->curriculum)) !=
            ICL_OK)
            return cli_fail("--curriculum", s);
    }
    return 0;
}

/* Activations and the activation gradients the backward keeps (the layouts of
 * lib/engine/model.c's carve_acts and carve_dacts) for B prompts of T
 * positions, plus the parameters, their gradients and the two Adam moments:
 * the bytes training needs, so that an impossible --batch fails before
 * anything is allocated. */
static int check_memory(const train_args *a, const icl_config *cfg, int T) {
    double need = 0.0, have = cli_physical_memory();
    icl_status s = icl_config_training_bytes(cfg, a->batch, T, &need);
    if (s != ICL_OK)
        return usage_fail("model options", s);
    if (have > 0 && need > have) {
        fprintf(stderr, "icl train: --batch %d needs about %.1f GB (prompts of %d positions, %d layers, d_model %d), "
                "more than the %.1f GB of memory of this machine; lower --batch (--accum keeps the effective batch)\n",
                a->batch, need / 1e9, T, cfg->n_layer, cfg->d_model, have / 1e9);
        return 2;
    }
    return 0;
}

static int alloc_toy(train_run *r) {
    if (r->family)
        return 0;
    size_t N = (size_t)r->batch * (size_t)r->T;
    r->toy_tokens = malloc(N * sizeof(int32_t));
    r->toy_targets = malloc(N * sizeof(int32_t));
    r->toy_weights = malloc(N * sizeof(float));
    if (!r->toy_tokens || !r->toy_targets || !r->toy_weights) {
        fprintf(stderr, "icl train: out of memory for %zu prompt positions\n", N);
        return 1;
    }
    return 0;
}

/* ---- --resume: the checkpoint's task, architecture and optimizer ---- */

/* The optimizer settings and step stored in a checkpoint (icl.optim, icl.step). */
static int read_run_state(const char *path, icl_optim_config *oc, long *step) {
    char text[2048];
    icl_status s = icl_checkpoint_read_meta(path, "icl.step", text, sizeof text);
    if (s != ICL_OK)
        return cli_fail(path, s);
    *step = strtol(text, NULL, 10);
    if (icl_checkpoint_read_meta(path, "icl.optim", text, sizeof text) != ICL_OK) {
        fprintf(stderr, "icl train: --resume %s: the checkpoint has no optimizer state to resume from\n", path);
        return 1;
    }
    static const char *const keys[] = {"lr", "min_lr_frac", "beta1", "beta2", "eps", "weight_decay", "grad_clip"};
    float *const fields[] = {&oc->lr, &oc->min_lr_frac, &oc->beta1, &oc->beta2, &oc->eps, &oc->weight_decay,
                             &oc->grad_clip};
    cJSON *j = cJSON_Parse(text);
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        *fields[i] = (float)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(j, keys[i]));
    oc->warmup_steps = (int)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(j, "warmup_steps"));
    oc->total_steps = (int)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(j, "total_steps"));
    cJSON_Delete(j);
    return 0;
}

/* The canonical spec of a task: a family's normalised spec, or the toy name. */
static void task_canonical(const char *task, char *out, size_t size) {
    icl_task_family *f = NULL;
    if (icl_task_family_create(&f, task) == ICL_OK)
        snprintf(out, size, "%s", icl_task_family_spec(f));
    else
        snprintf(out, size, "%s", task);
    icl_task_family_free(f);
}

/* --task and the toy --symbols / --length from the checkpoint, or refused when they contradict it. */
static int resume_task(train_args *a, const icl_config *saved) {
    char length[32];
    int toy_length = 0;
    if (icl_checkpoint_read_meta(a->resume, "user.length", length, sizeof length) == ICL_OK)
        toy_length = atoi(length);
    if (icl_checkpoint_read_meta(a->resume, "user.task", a->resume_task, sizeof a->resume_task) != ICL_OK ||
        !a->resume_task[0])
        return 0; /* an older checkpoint: --task as given, checked against the data's shape later */
    if (given(a, "--task")) {
        char mine[1024], theirs[1024];
        task_canonical(a->task, mine, sizeof mine);
        task_canonical(a->resume_task, theirs, sizeof theirs);
        if (strcmp(mine, theirs) != 0) {
            fprintf(stderr, "icl train: --task %s contradicts --resume %s, trained on %s; leave --task out\n",
                    a->task, a->resume, a->resume_task);
            return 2;
        }
    }
    a->task = a->resume_task;
    icl_toy_kind kind;
    if (icl_toy_parse(a->task, &kind) != ICL_OK)
        return 0;
    const struct { const char *name; int *value, saved; } toy[] = {
        {"--symbols", &a->symbols, saved->vocab_size - 2}, {"--length", &a->length, toy_length}};
    for (int i = 0; i < 2; i++) {
        if (toy[i].saved <= 0)
            continue;
        if (given(a, toy[i].name) && *toy[i].value != toy[i].saved) {
            fprintf(stderr, "icl train: %s %d contradicts --resume %s (trained with %s %d); leave it out\n",
                    toy[i].name, *toy[i].value, a->resume, toy[i].name, toy[i].saved);
            return 2;
        }
        *toy[i].value = toy[i].saved;
    }
    return 0;
}

/* Architecture options repeated on --resume must agree with the checkpoint, whose config is used. */
static int resume_architecture(train_args *a, const icl_config *saved) {
    icl_config with_ff = *saved, with_std = *saved;
    with_ff.d_ff = a->cfg.d_ff;
    with_std.init_std = a->cfg.init_std;
    const struct { const char *name; double mine, theirs; } arch[] = {
        {"--layers", a->cfg.n_layer, saved->n_layer},
        {"--d-model", a->cfg.d_model, saved->d_model},
        {"--heads", a->cfg.n_head, saved->n_head},
        {"--d-ff", icl_config_d_ff(&with_ff), icl_config_d_ff(saved)},
        {"--ctx", a->cfg.ctx, saved->ctx},
        {"--init-std", icl_config_init_std(&with_std), icl_config_init_std(saved)},
        {"--untied", a->untied, !saved->tie_embeddings},
    };
    for (size_t i = 0; i < sizeof arch / sizeof arch[0]; i++)
        if (given(a, arch[i].name) && arch[i].mine != arch[i].theirs) {
            fprintf(stderr, "icl train: %s %g contradicts --resume %s, whose model has %s %g; leave it out\n",
                    arch[i].name, arch[i].mine, a->resume, arch[i].name, arch[i].theirs);
            return 2;
        }
    a->cfg = *saved;
    return 0;
}

/* The checkpoint's optimizer settings unless an option replaces one (said
 * aloud), and the schedule's length: --steps, else the checkpoint's run. */
static int resume_optimizer(train_args *a, const icl_optim_config *saved, long step) {
    icl_optim_config oc = *saved;
    const struct { const char *name; float *dst; float mine, theirs; } f[] = {
        {"--lr", &oc.lr, a->oc.lr, saved->lr},
        {"--min-lr-frac", &oc.min_lr_frac, a->oc.min_lr_frac, saved->min_lr_frac},
        {"--beta1", &oc.beta1, a->oc.beta1, saved->beta1},
        {"--beta2", &oc.beta2, a->oc.beta2, saved->beta2},
        {"--wd", &oc.weight_decay, a->oc.weight_decay, saved->weight_decay},
        {"--clip", &oc.grad_clip, a->oc.grad_clip, saved->grad_clip},
    };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (given(a, f[i].name) && f[i].mine != f[i].theirs) {
            *f[i].dst = f[i].mine;
            fprintf(stderr, "icl train: %s %g replaces the checkpoint's %g\n", f[i].name, f[i].mine, f[i].theirs);
        }
    if (given(a, "--warmup"))
        oc.warmup_steps = a->warmup;
    if (!given(a, "--steps"))
        a->steps = saved->total_steps;
    if (a->steps <= step) {
        if (given(a, "--steps"))
            fprintf(stderr, "icl train: --resume %s is at step %ld, so --steps %ld would train nothing; pass --steps "
                    "above %ld\n", a->resume, step, a->steps, step);
        else
            fprintf(stderr, "icl train: --resume %s is at step %ld, the end of its run; pass --steps above %ld to "
                    "train on\n", a->resume, step, step);
        return 2;
    }
    oc.total_steps = (int)a->steps;
    if (a->steps != saved->total_steps)
        fprintf(stderr, "icl train: resuming at step %ld of a new %ld-step cosine schedule (the checkpoint's run had "
                "%d steps); the learning rate there is %.2e\n", step, a->steps, saved->total_steps,
                icl_optim_lr_at(&oc, step));
    else if (!a->quiet)
        fprintf(stderr, "icl train: resuming at step %ld of %ld\n", step, a->steps);
    a->oc = oc;
    return 0;
}

static int apply_resume(train_args *a) {
    icl_config saved;
    icl_optim_config saved_oc = icl_optim_config_default();
    long step = 0;
    icl_status s = icl_checkpoint_read_config(a->resume, &saved);
    if (s != ICL_OK)
        return cli_fail(a->resume, s);
    int rc = read_run_state(a->resume, &saved_oc, &step);
    if (!rc)
        rc = resume_task(a, &saved);
    if (!rc)
        rc = resume_architecture(a, &saved);
    if (!rc)
        rc = resume_optimizer(a, &saved_oc, step);
    a->resume_step = step;
    return rc;
}

/* ---- output paths, all checked before the first step ---- */

/* 1 if path lies inside directory dir (both must exist). */
static int is_inside(const char *path, const char *dir) {
    char p[PATH_MAX], d[PATH_MAX];
    if (!realpath(path, p) || !realpath(dir, d))
        return 0;
    size_t n = strlen(d);
    return strncmp(p, d, n) == 0 && p[n] == '/';
}

/* The first entry of directory dir into name ("" when empty or missing). */
static void first_entry(const char *dir, char *name, size_t size) {
    name[0] = '\0';
    DIR *d = opendir(dir);
    for (struct dirent *e; d && !name[0] && (e = readdir(d));)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            snprintf(name, size, "%s", e->d_name);
    if (d)
        closedir(d);
}

/* --force: delete the files an earlier run wrote into --out, nothing else. */
static int remove_old_run(const train_args *a) {
    for (int i = 0; i < OUT_CHECKPOINTS; i++)
        if (unlink(a->out_paths[i]) != 0 && errno != ENOENT) {
            fprintf(stderr, "icl train: --force: cannot delete %s: %s\n", a->out_paths[i], strerror(errno));
            return 1;
        }
    DIR *d = opendir(a->out_paths[OUT_CHECKPOINTS]);
    char path[PATH_MAX + 300];
    for (struct dirent *e; d && (e = readdir(d));) {
        size_t n = strlen(e->d_name);
        if (strncmp(e->d_name, "step_", 5) != 0 || n < 12 || strcmp(e->d_name + n - 12, ".safetensors") != 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", a->out_paths[OUT_CHECKPOINTS], e->d_name);
        if (unlink(path) != 0) {
            fprintf(stderr, "icl train: --force: cannot delete %s: %s\n", path, strerror(errno));
            closedir(d);
            return 1;
        }
    }
    if (d)
        closedir(d);
    rmdir(a->out_paths[OUT_CHECKPOINTS]); /* only if now empty */
    return 0;
}

/* A non-empty --out is an earlier run: continued by --resume from inside it, replaced with --force, else refused. */
static int check_run_dir(const train_args *a) {
    char entry[256];
    first_entry(a->out_dir, entry, sizeof entry);
    int inside = a->resume && is_inside(a->resume, a->out_dir);
    if (inside && a->force) {
        fprintf(stderr, "icl train: --force would delete the checkpoint --resume %s reads; leave --force out to "
                "continue the run in %s\n", a->resume, a->out_dir);
        return 2;
    }
    if (entry[0] && !inside && !a->force) {
        fprintf(stderr, "icl train: --out %s already holds a run (%s, ...); pass --resume with one of its checkpoints "
                "to continue it, --force to replace it, or a new directory\n", a->out_dir, entry);
        return 2;
    }
    return 0;
}

/* Every file the run will write, that is not one of --out's own: its directory exists and is writable. */
static int check_files(const train_args *a, const train_run *r) {
    const struct { const char *option, *path; int used; } files[] = {
        {"--save", a->save, 1},
        {"--log-csv", a->csv_path, 1},
        {"--task-log", a->task_log, r->family && a->eval_every > 0},
        {"--eval-out", a->eval_out, r->family != NULL},
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        int own = 0;
        for (int k = 0; k < OUT_CHECKPOINTS && a->out_dir; k++)
            own |= files[i].path == a->out_paths[k];
        if (files[i].path && files[i].used && !own && cli_check_output_file(files[i].option, files[i].path))
            return 1;
    }
    return 0;
}

/* Resuming inside the run: the log rows of steps after the checkpoint are
 * about to be trained again, so they go (the file is rewritten atomically). */
static int trim_log(const char *path, long step) {
    FILE *in = fopen(path, "r");
    if (!in)
        return 0;
    char tmp[PATH_MAX + 8], line[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *out = fopen(tmp, "w");
    int ok = out != NULL, first = 1;
    while (ok && fgets(line, sizeof line, in)) {
        if (first || strtol(line, NULL, 10) <= step)
            ok = fputs(line, out) >= 0;
        first = 0;
    }
    fclose(in);
    if (out && fclose(out) != 0)
        ok = 0;
    if (!ok || rename(tmp, path) != 0) {
        fprintf(stderr, "icl train: cannot rewrite %s: %s\n", path, strerror(errno));
        remove(tmp);
        return 1;
    }
    return 0;
}

/* Options that would save nothing, or ask for outputs this run never writes. */
static int check_output_options(const train_args *a, const train_run *r) {
    if (!a->out_dir && !a->save) {
        fprintf(stderr, "icl train: nothing would be saved; pass --out DIR (model, logs, evaluation, checkpoints) "
                "or --save FILE (the model)\n");
        return 2;
    }
    if (a->force && !a->out_dir) {
        fprintf(stderr, "icl train: --force only applies to --out DIR\n");
        return 2;
    }
    if (a->checkpoint_every > 0 && !a->checkpoint_dir && !a->out_dir) {
        fprintf(stderr, "icl train: --checkpoint-every needs --checkpoint-dir DIR or --out DIR to write into\n");
        return 2;
    }
    const char *family_only[] = {"--eval-every", "--task-log", "--eval-out"};
    for (int i = 0; i < 3 && !r->family; i++)
        if (given(a, family_only[i])) {
            fprintf(stderr, "icl train: %s needs a task family (--task %s is a toy task)\n", family_only[i], a->task);
            return 2;
        }
    if (given(a, "--task-log") && a->eval_every <= 0) {
        fprintf(stderr, "icl train: --task-log needs --eval-every N, or nothing is written to it\n");
        return 2;
    }
    return 0;
}

/* Check every output before the first step and create the directories. */
static int setup_outputs(train_args *a, const train_run *r) {
    int rc = check_output_options(a, r);
    if (!rc && a->out_dir)
        rc = check_run_dir(a);
    if (rc)
        return rc;
    if (a->out_dir) {
        for (int i = 0; i < 5; i++)
            snprintf(a->out_paths[i], sizeof a->out_paths[i], "%s/%s", a->out_dir, out_names[i]);
        a->save = a->save ? a->save : a->out_paths[OUT_MODEL];
        a->csv_path = a->csv_path ? a->csv_path : a->out_paths[OUT_TRAIN_LOG];
        a->task_log = a->task_log ? a->task_log : a->out_paths[OUT_TASK_LOG];
        a->eval_out = a->eval_out ? a->eval_out : a->out_paths[OUT_EVAL];
        if (a->checkpoint_every > 0 && !a->checkpoint_dir)
            a->checkpoint_dir = a->out_paths[OUT_CHECKPOINTS];
        if (cli_make_dir(a->out_dir))
            return 1;
    }
    if (check_files(a, r) || (a->force && a->out_dir && remove_old_run(a)))
        return 1;
    if (a->out_dir && a->resume && is_inside(a->resume, a->out_dir) &&
        (trim_log(a->csv_path, a->resume_step) || trim_log(a->task_log, a->resume_step)))
        return 1;
    if (a->checkpoint_dir && cli_make_dir(a->checkpoint_dir))
        return 1;
    return 0;
}

/* ---- the run ---- */

/* The model (new, or the checkpoint's) and its optimizer, with the resumed state. */
static int create_model(train_run *r, const train_args *a, const icl_config *data_cfg) {
    icl_status s;
    if (a->resume) {
        if ((s = icl_checkpoint_load_model(a->resume, a->backend, &r->model)) != ICL_OK)
            return cli_fail(a->resume, s);
        if (cli_check_finite_params(a->resume, r->model))
            return 1;
        if (data_cfg->mode != a->cfg.mode || (a->cfg.mode == ICL_MODE_TOKEN && data_cfg->vocab_size != a->cfg.vocab_size)) {
            fprintf(stderr, "icl train: %s was trained on data of another shape than --task %s\n", a->resume, a->task);
            return 2;
        }
        if (r->T > a->cfg.ctx) {
            fprintf(stderr, "icl train: prompts of %d positions do not fit the context of --resume %s (%d)\n", r->T,
                    a->resume, a->cfg.ctx);
            return 2;
        }
    } else if ((s = icl_model_create(&r->model, &a->cfg, a->backend, (uint64_t)a->seed)) != ICL_OK) {
        return cli_fail("model", s);
    }
    if ((s = icl_optimizer_create(&r->opt, r->model, &a->oc)) != ICL_OK)
        return cli_fail("optimizer", s);
    icl_optimizer_set_graphs(r->opt, !a->no_graphs);
    icl_optimizer_set_dist(r->opt, r->dist);
    icl_rng_init(&r->data_rng, (uint64_t)a->seed, "data");
    if (a->resume && (s = icl_checkpoint_load_state(a->resume, r->opt, &r->data_rng)) != ICL_OK)
        return cli_fail(a->resume, s);
    return 0;
}

/* The model and optimizer settings: validated here so that a bad value is
 * reported as the options' fault (exit 2), before anything is allocated. */
static int check_settings(const train_args *a) {
    if (a->cfg.d_model % a->cfg.n_head != 0) {
        fprintf(stderr, "icl train: --d-model %d is not divisible by --heads %d\n", a->cfg.d_model, a->cfg.n_head);
        return 2;
    }
    icl_status s = icl_config_validate(&a->cfg);
    if (s != ICL_OK)
        return usage_fail("model options", s);
    s = icl_optim_config_validate(&a->oc);
    return s == ICL_OK ? 0 : usage_fail("optimizer options", s);
}

/* Append one shell word to buf, quoted when it needs to be. */
static void append_word(char *buf, size_t size, const char *word) {
    size_t n = strlen(buf);
    int plain = *word && strspn(word, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-+=.,:/@%") ==
                             strlen(word);
    n += (size_t)snprintf(buf + n, n < size ? size - n : 0, "%s%s", n ? " " : "", plain ? "" : "'");
    for (const char *c = word; *c && n < size; c++)
        n += (size_t)snprintf(buf + n, size - n, *c == '\'' && !plain ? "'\\''" : "%c", *c);
    if (!plain && n < size)
        snprintf(buf + n, size - n, "'");
}

/* Interrupted: save a resumable checkpoint and print the command that resumes it. */
static int save_interrupted(train_run *r, const train_args *a) {
    long step = icl_optimizer_step_count(r->opt);
    char path[PATH_MAX + 64], dir[PATH_MAX];
    if (a->checkpoint_dir || a->out_dir) {
        snprintf(dir, sizeof dir, "%s", a->checkpoint_dir ? a->checkpoint_dir : a->out_paths[OUT_CHECKPOINTS]);
        if (cli_make_dir(dir))
            return 1;
        snprintf(path, sizeof path, "%s/step_%07ld.safetensors", dir, step);
    } else {
        size_t n = strlen(a->save), ext = strlen(".safetensors");
        int has_ext = n > ext && strcmp(a->save + n - ext, ".safetensors") == 0;
        snprintf(path, sizeof path, "%.*s.step_%07ld.safetensors", (int)(has_ext ? n - ext : n), a->save, step);
    }
    icl_status s = save_run(r, path);
    if (s != ICL_OK)
        return cli_fail(path, s);
    char cmd[8192] = "";
    if (r->dist && icl_dist_size(r->dist) > 1) { /* the same number of ranks gives the same bits */
        char ranks[32];
        snprintf(ranks, sizeof ranks, "%d", icl_dist_size(r->dist));
        append_word(cmd, sizeof cmd, "mpirun");
        append_word(cmd, sizeof cmd, "-np");
        append_word(cmd, sizeof cmd, ranks);
    }
    append_word(cmd, sizeof cmd, a->argv[0]);
    for (int i = 1; i < a->argc; i++) {
        if (strcmp(a->argv[i], "--force") == 0)
            continue;
        if (strcmp(a->argv[i], "--resume") == 0) {
            i++;
            continue;
        }
        append_word(cmd, sizeof cmd, a->argv[i]);
    }
    append_word(cmd, sizeof cmd, "--resume");
    append_word(cmd, sizeof cmd, path);
    fprintf(stderr, "icl train: interrupted by %s after step %ld of %ld; saved a resumable checkpoint: %s\n",
            stop_signal == SIGTERM ? "SIGTERM" : "SIGINT", step, a->steps, path);
    fprintf(stderr, "icl train: to resume: %s\n", cmd);
    return 0;
}

static void print_header(const train_run *r, const train_args *a) {
    const icl_config *mc = icl_model_config(r->model);
    fprintf(stderr, "icl train: task %s | %s mode, %d layers, d_model %d, %d heads, %zu parameters | %s backend\n",
            a->task, mc->mode == ICL_MODE_TOKEN ? "token" : "vector", mc->n_layer, mc->d_model, mc->n_head,
            icl_model_num_params(r->model), icl_backend_name(a->backend));
}

/* Train until --steps or a stop signal. 0 when every step ran, 128 + the signal when stopped, else 1. */
static int run_loop(train_run *r, const train_args *a) {
    if (a->csv_path && !(r->csv = open_csv(a->csv_path, "step,loss,lr,grad_norm,seconds\n")))
        return 1;
    if (r->family && a->eval_every > 0 && a->task_log &&
        !(r->task_csv = open_csv(a->task_log, "step,task,loss,metric\n")))
        return 1;
    r->eval_prompts = a->eval_prompts;
    if (!a->quiet)
        print_header(r, a);
    r->total_steps = a->steps;
    r->first_step = icl_optimizer_step_count(r->opt) + 1;
    r->checkpoint_dir = a->checkpoint_dir;
    r->quiet = a->quiet;
    r->t_start = cli_now();
    icl_train_loop_config lc = {
        .steps = a->steps, .grad_accum = a->accum, .next_batch = next_batch,
        .on_log = (a->quiet && !r->csv) ? NULL : on_log, .log_every = a->log_every,
        .on_eval = r->task_csv ? on_eval : NULL, .eval_every = a->eval_every,
        .on_checkpoint = a->checkpoint_dir ? on_checkpoint : NULL, .checkpoint_every = a->checkpoint_every,
        .user = r, .should_stop = should_stop,
    };
    catch_stop_signals(1);
    icl_status s = icl_train_loop(r->model, r->opt, &r->data_rng, &lc);
    if (s != ICL_OK)
        return cli_fail("training", s);
    if (icl_optimizer_step_count(r->opt) < a->steps) {
        int code = 128 + (stop_signal ? stop_signal : SIGINT); /* a rank may learn of the stop from another */
        return icl_dist_rank(r->dist) > 0 ? code : save_interrupted(r, a) ? 1 : code;
    }
    return 0;
}

/* After the last step: the model, then (no longer interruptible) the final evaluation. */
static int finish_run(train_run *r, const train_args *a) {
    if (!a->save) /* a rank other than 0 */
        return 0;
    icl_status s = save_run(r, a->save);
    if (s != ICL_OK)
        return cli_fail(a->save, s);
    if (!a->quiet)
        fprintf(stderr, "icl train: saved %s\n", a->save);
    if (stop_signal) {
        fprintf(stderr, "icl train: interrupted by %s after the last step; the model is saved, the final evaluation "
                "was skipped\n", stop_signal == SIGTERM ? "SIGTERM" : "SIGINT");
        return 128 + stop_signal;
    }
    catch_stop_signals(0);
    if (r->family && a->eval_out && final_eval(r, a->eval_out))
        return 1;
    return 0;
}

static void free_run(train_run *r) {
    if (r->csv)
        fclose(r->csv);
    if (r->task_csv)
        fclose(r->task_csv);
    icl_optimizer_free(r->opt);
    icl_model_free(r->model);
    icl_task_batch_free(&r->tb);
    icl_task_family_free(r->family);
    free(r->toy_tokens);
    free(r->toy_targets);
    free(r->toy_weights);
}

/* Options, then data, settings, memory and outputs are checked before the model is built. */
static int prepare(train_args *a, train_run *r) {
    int rc = a->resume ? apply_resume(a) : 0;
    if (rc)
        return rc;
    if (!a->resume) {
        a->oc.total_steps = (int)a->steps;
        a->oc.warmup_steps = a->warmup >= 0 ? a->warmup : (int)(a->steps / 10 < 100 ? a->steps / 10 : 100);
    }
    icl_config data_cfg = a->cfg;
    r->a = a;
    r->batch = a->batch;
    if ((rc = setup_data(r, a, a->resume ? &data_cfg : &a->cfg)) != 0)
        return rc;
    if (!a->resume)
        data_cfg = a->cfg;
    if ((rc = check_settings(a)) || (rc = check_memory(a, &a->cfg, r->T)) ||
        (icl_dist_rank(r->dist) == 0 && (rc = setup_outputs(a, r))) || (rc = alloc_toy(r)))
        return rc;
    if (icl_dist_rank(r->dist) > 0) /* rank 0 writes every file */
        a->save = a->csv_path = a->task_log = a->eval_out = a->checkpoint_dir = NULL;
    return create_model(r, a, &data_cfg);
}

/* ---- data parallel: mpirun -np N icl train (docs/scaling.md) ---- */

static void train_mpi_finalize(void) { icl_dist_finalize(); }

/* Join the job's ranks when an MPI launcher started this process (*dist stays
 * NULL alone). Ranks other than 0 train quietly: rank 0 writes every file. */
static int train_dist_begin(train_args *a, icl_dist **dist) {
    *dist = NULL;
    if (a->no_mpi || !icl_dist_launched())
        return 0;
    if (!icl_dist_compiled()) {
        fprintf(stderr, "icl train: started by an MPI launcher, but this icl was built without MPI "
                        "(make MPI=1; --no-mpi trains in each process alone)\n");
        return 1;
    }
    icl_status s = icl_dist_init(NULL, NULL);
    if (s == ICL_OK && atexit(train_mpi_finalize) != 0)
        s = ICL_ERR_STATE;
    if (s != ICL_OK || (s = icl_dist_create(dist)) != ICL_OK)
        return cli_fail("MPI", s);
    if (icl_dist_rank(*dist) > 0)
        a->quiet = 1;
    return 0;
}

/* A rank that failed ends the job: the others would wait for it forever. A
 * stop by signal is agreed by every rank, so it ends normally. */
static void train_dist_end(icl_dist *dist, int rc) {
    if (rc != 0 && rc != 128 + SIGINT && rc != 128 + SIGTERM)
        icl_dist_abort(dist, rc);
    icl_dist_free(dist);
}

int cmd_train(int argc, char **argv) {
    train_args a;
    train_run r = {0};
    int rc = parse_options(&a, argc, argv);
    if (rc)
        return rc == HELP_SHOWN ? 0 : rc;
    if (train_dist_begin(&a, &r.dist))
        return 1;
    if (!(rc = prepare(&a, &r)) && !(rc = run_loop(&r, &a)))
        rc = finish_run(&r, &a);
    free_run(&r);
    train_dist_end(r.dist, rc);
    return rc;
}
