/* icl train: train a model on a toy task (copy, reverse) or an ICL task family. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "icl/dist.h"
#include "icl/eval.h"
#include "icl/task.h"
#include "icl_cli.h"

typedef struct {
    /* data: a toy task, or a task family */
    icl_toy_task toy;
    int32_t *toy_tokens, *toy_targets;
    float *toy_weights;
    icl_task_family *family;
    icl_task_batch_options batch_opt;
    icl_task_batch tb;
    int batch;
    int use_curriculum; /* Garg's growing dimensions and prompt length, or a short-prompt phase */
    icl_curriculum curriculum;
    /* bookkeeping for the callbacks */
    icl_model *model;
    icl_optimizer *opt;
    icl_rng *data_rng;
    long total_steps, first_step;
    double tokens_done; /* positions trained on by this process, for tokens/s */
    double t_start;
    const char *checkpoint_dir;
    FILE *csv, *task_csv;
    int eval_prompts;
    int quiet;
} train_run;

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

static icl_status save_run(const train_run *r, const char *path) {
    icl_meta_entry meta = {"user.task", r->family ? icl_task_family_spec(r->family) : ""};
    return icl_checkpoint_save_with_meta(path, r->model, r->opt, r->data_rng, &meta, r->family ? 1 : 0);
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

static int setup_data(train_run *r, const char *task, int symbols, int length, int examples, int curriculum,
                      int short_examples, long short_steps, icl_config *cfg) {
    icl_toy_kind kind;
    if (icl_toy_parse(task, &kind) == ICL_OK) {
        r->toy = (icl_toy_task){kind, symbols, length};
        size_t N = (size_t)r->batch * icl_toy_seq_len(&r->toy);
        r->toy_tokens = malloc(N * sizeof(int32_t));
        r->toy_targets = malloc(N * sizeof(int32_t));
        r->toy_weights = malloc(N * sizeof(float));
        if (!r->toy_tokens || !r->toy_targets || !r->toy_weights) {
            fprintf(stderr, "icl train: out of memory\n");
            return 1;
        }
        cfg->mode = ICL_MODE_TOKEN;
        cfg->vocab_size = icl_toy_vocab_size(&r->toy);
        if (cfg->ctx < icl_toy_seq_len(&r->toy))
            cfg->ctx = icl_toy_seq_len(&r->toy);
        if (curriculum || short_examples >= 0) {
            fprintf(stderr, "icl train: --curriculum and --short-prompts need a task family\n");
            return 1;
        }
        return 0;
    }
    icl_status s = icl_task_family_create(&r->family, task);
    if (s != ICL_OK)
        return cli_fail("--task (neither copy, reverse nor a task family spec)", s);
    r->batch_opt = icl_task_batch_options_default();
    r->batch_opt.B = r->batch;
    r->batch_opt.n_examples = examples > 0 ? examples : icl_task_family_default_examples(r->family);
    int T;
    if ((s = icl_task_family_prompt_len(r->family, r->batch_opt.n_examples, &T)) != ICL_OK ||
        (s = icl_task_family_fill_config(r->family, cfg)) != ICL_OK)
        return cli_fail("task family", s);
    if (cfg->ctx < T)
        cfg->ctx = T;
    if (curriculum && short_examples >= 0) {
        fprintf(stderr, "icl train: choose --curriculum or --short-prompts, not both\n");
        return 1;
    }
    if (short_examples >= 0)
        return setup_short_prompts(r, short_examples, short_steps);
    if (curriculum) {
        if (icl_task_family_mode(r->family) != ICL_MODE_VECTOR) {
            fprintf(stderr, "icl train: --curriculum needs a vector task family\n");
            return 1;
        }
        r->use_curriculum = 1;
        if ((s = icl_curriculum_default(icl_task_family_dim(r->family), r->batch_opt.n_examples, &r->curriculum)) !=
            ICL_OK)
            return cli_fail("--curriculum", s);
    }
    return 0;
}

/* ---- data parallel: mpirun -np N icl train (docs/scaling.md) ---- */

static void train_mpi_finalize(void) { icl_dist_finalize(); }

/* Join the job's ranks when an MPI launcher started this process (NULL
 * handle: alone). Ranks other than 0 train silently: rank 0 writes every
 * file. Returns 1 after printing an error. */
static int train_dist_begin(int no_mpi, icl_dist **dist, const char **save, const char **csv_path,
                            const char **task_log, const char **eval_out, const char **checkpoint_dir, int *quiet) {
    *dist = NULL;
    if (no_mpi || !icl_dist_launched())
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
    if (icl_dist_rank(*dist) > 0) {
        *save = *csv_path = *task_log = *eval_out = *checkpoint_dir = NULL;
        *quiet = 1;
    }
    return 0;
}

/* A rank that failed ends the job: the others would wait for it forever. */
static void train_dist_end(icl_dist *dist, int result) {
    if (result != 0)
        icl_dist_abort(dist, result);
    icl_dist_free(dist);
}

int cmd_train(int argc, char **argv) {
    icl_config cfg = icl_config_default();
    icl_optim_config oc = icl_optim_config_default();
    const char *task = "copy", *save = NULL, *resume = NULL, *backend_name = NULL, *csv_path = NULL;
    const char *checkpoint_dir = NULL, *out_dir = NULL, *task_log = NULL, *eval_out = NULL;
    int eval_prompts = 64, curriculum = 0, short_examples = -1;
    long short_steps = 0;
    long eval_every = 0;
    int symbols = 10, length = 8, batch = 32, accum = 1, examples = 0, untied = 0, quiet = 0, no_graphs = 0;
    int no_mpi = 0;
    long steps = 1000, seed = 1, log_every = 50, checkpoint_every = 0;
    int warmup = -1;
    cli_option opts[] = {
        {"--task", OPT_STRING, &task, "copy | reverse | an ICL task family spec (see docs/tasks.md) [copy]"},
        {"--symbols", OPT_INT, &symbols, "toy tasks: alphabet size [10]"},
        {"--length", OPT_INT, &length, "toy tasks: string length [8]"},
        {"--examples", OPT_INT, &examples, "task families: in-context examples per prompt [family default]"},
        {"--curriculum", OPT_FLAG, &curriculum, "vector families: Garg's curriculum (dimensions and examples grow)"},
        {"--short-prompts", OPT_INT, &short_examples, "task families: examples per prompt during --short-steps [off]"},
        {"--short-steps", OPT_LONG, &short_steps, "task families: steps trained on --short-prompts prompts"},
        {"--steps", OPT_LONG, &steps, "optimizer steps [1000]"},
        {"--batch", OPT_INT, &batch, "prompts per micro-batch, split over the ranks under mpirun [32]"},
        {"--accum", OPT_INT, &accum, "micro-batches per step (gradient accumulation) [1]"},
        {"--layers", OPT_INT, &cfg.n_layer, "transformer blocks [2]"},
        {"--d-model", OPT_INT, &cfg.d_model, "residual width [64]"},
        {"--heads", OPT_INT, &cfg.n_head, "attention heads [4]"},
        {"--d-ff", OPT_INT, &cfg.d_ff, "MLP width [4*d_model]"},
        {"--ctx", OPT_INT, &cfg.ctx, "context length [at least the prompt length]"},
        {"--init-std", OPT_FLOAT, &cfg.init_std, "std of the initial weight matrices [0 = 1/sqrt(d_model)]"},
        {"--untied", OPT_FLAG, &untied, "separate lm_head instead of the tied token embedding"},
        {"--lr", OPT_FLOAT, &oc.lr, "peak learning rate [1e-3]"},
        {"--min-lr-frac", OPT_FLOAT, &oc.min_lr_frac, "final lr as a fraction of the peak [0.1]"},
        {"--warmup", OPT_INT, &warmup, "warm-up steps [min(100, steps/10)]"},
        {"--beta1", OPT_FLOAT, &oc.beta1, "Adam beta1 [0.9]"},
        {"--beta2", OPT_FLOAT, &oc.beta2, "Adam beta2 [0.99]"},
        {"--wd", OPT_FLOAT, &oc.weight_decay, "weight decay on matrices [0.01]"},
        {"--clip", OPT_FLOAT, &oc.grad_clip, "global gradient-norm clip, 0 = off [1.0]"},
        {"--seed", OPT_LONG, &seed, "seed of the initialisation and the data [1]"},
        {"--out", OPT_STRING, &out_dir, "directory for model.safetensors, train_log.csv and (task families) "
                                          "task_log.csv, eval.csv, checkpoints/"},
        {"--save", OPT_STRING, &save, "write the final checkpoint here"},
        {"--eval-every", OPT_LONG, &eval_every, "task families: steps between per-task evaluations [0 = off]"},
        {"--eval-prompts", OPT_INT, &eval_prompts, "task families: prompts per task in evaluations [64]"},
        {"--task-log", OPT_STRING, &task_log, "task families: step,task,loss,metric CSV of the evaluations"},
        {"--eval-out", OPT_STRING, &eval_out, "task families: final accuracy/MSE by number of examples CSV"},
        {"--checkpoint-dir", OPT_STRING, &checkpoint_dir, "directory for periodic checkpoints"},
        {"--checkpoint-every", OPT_LONG, &checkpoint_every, "steps between periodic checkpoints [0 = off]"},
        {"--resume", OPT_STRING, &resume, "continue from a checkpoint saved with optimizer state"},
        {"--log-every", OPT_LONG, &log_every, "steps between progress lines [50]"},
        {"--log-csv", OPT_STRING, &csv_path, "append step,loss,lr,grad_norm,seconds rows to this CSV"},
        {"--backend", OPT_STRING, &backend_name, "cpu | cuda [$ICL_BACKEND or cpu]"},
        {"--no-graphs", OPT_FLAG, &no_graphs, "cuda: launch every kernel instead of replaying a recorded step"},
        {"--quiet", OPT_FLAG, &quiet, "no progress lines"},
        {"--no-mpi", OPT_FLAG, &no_mpi, "under mpirun: train in this process alone, not data-parallel"},
    };
    int rc = cli_parse(argc, argv, 2, opts, sizeof opts / sizeof opts[0],
                       "usage: icl train [options]\n\nTrain a transformer; prints step, loss, tokens/s and ETA.",
                       NULL, 0, NULL);
    if (rc)
        return rc < 0 ? 2 : 0;
    icl_backend_kind backend;
    if (cli_backend(backend_name, &backend))
        return 1;
    if (batch < 1 || steps < 1 || accum < 1 || accum > ICL_MAX_GRAD_ACCUM) {
        fprintf(stderr, "icl train: --batch and --steps must be >= 1, --accum in [1, %d]\n", ICL_MAX_GRAD_ACCUM);
        return 2;
    }
    char out_paths[5][4096];
    if (out_dir) {
        if (cli_make_dir(out_dir))
            return 1;
        const char *names[5] = {"model.safetensors", "train_log.csv", "task_log.csv", "eval.csv", "checkpoints"};
        for (int i = 0; i < 5; i++) snprintf(out_paths[i], sizeof out_paths[i], "%s/%s", out_dir, names[i]);
        save = save ? save : out_paths[0];
        csv_path = csv_path ? csv_path : out_paths[1];
        task_log = task_log ? task_log : out_paths[2];
        eval_out = eval_out ? eval_out : out_paths[3];
        if (checkpoint_every > 0 && !checkpoint_dir)
            checkpoint_dir = out_paths[4];
    }
    cfg.tie_embeddings = !untied;
    oc.total_steps = (int)steps;
    oc.warmup_steps = warmup >= 0 ? warmup : (int)(steps / 10 < 100 ? steps / 10 : 100);

    icl_dist *dist;
    if (train_dist_begin(no_mpi, &dist, &save, &csv_path, &task_log, &eval_out, &checkpoint_dir, &quiet))
        return 1;
    train_run r = {0};
    r.batch = batch;
    int result = 1;
    if (setup_data(&r, task, symbols, length, examples, curriculum, short_examples, short_steps, &cfg))
        goto done;
    icl_rng data_rng;
    icl_status s;
    if (resume) {
        icl_config saved;
        if ((s = icl_checkpoint_read_config(resume, &saved)) != ICL_OK ||
            (s = icl_checkpoint_load_model(resume, backend, &r.model)) != ICL_OK) {
            cli_fail(resume, s);
            goto done;
        }
        if (saved.mode != cfg.mode || (cfg.mode == ICL_MODE_TOKEN && saved.vocab_size != cfg.vocab_size)) {
            fprintf(stderr, "icl train: %s was trained on data of another shape than --task %s\n", resume, task);
            goto done;
        }
    } else if ((s = icl_model_create(&r.model, &cfg, backend, (uint64_t)seed)) != ICL_OK) {
        cli_fail("model", s);
        goto done;
    }
    if ((s = icl_optimizer_create(&r.opt, r.model, &oc)) != ICL_OK) {
        cli_fail("optimizer", s);
        goto done;
    }
    icl_optimizer_set_graphs(r.opt, !no_graphs);
    icl_optimizer_set_dist(r.opt, dist);
    icl_rng_init(&data_rng, (uint64_t)seed, "data");
    if (resume && (s = icl_checkpoint_load_state(resume, r.opt, &data_rng)) != ICL_OK) {
        cli_fail(resume, s);
        goto done;
    }
    if (checkpoint_dir && cli_make_dir(checkpoint_dir))
        goto done;
    if (csv_path && !(r.csv = open_csv(csv_path, "step,loss,lr,grad_norm,seconds\n")))
        goto done;
    if (r.family && eval_every > 0 && task_log && !(r.task_csv = open_csv(task_log, "step,task,loss,metric\n")))
        goto done;
    r.eval_prompts = eval_prompts;
    const icl_config *mc = icl_model_config(r.model);
    if (!quiet)
        fprintf(stderr, "icl train: task %s | %s mode, %d layers, d_model %d, %d heads, %zu parameters | %s backend\n",
                task, mc->mode == ICL_MODE_TOKEN ? "token" : "vector", mc->n_layer, mc->d_model, mc->n_head,
                icl_model_num_params(r.model), icl_backend_name(backend));
    r.data_rng = &data_rng;
    r.total_steps = steps;
    r.first_step = icl_optimizer_step_count(r.opt) + 1;
    r.checkpoint_dir = checkpoint_dir;
    r.quiet = quiet;
    r.t_start = cli_now();
    icl_train_loop_config lc = {
        .steps = steps, .grad_accum = accum, .next_batch = next_batch,
        .on_log = (quiet && !r.csv) ? NULL : on_log, .log_every = log_every,
        .on_eval = r.task_csv ? on_eval : NULL, .eval_every = eval_every,
        .on_checkpoint = checkpoint_dir ? on_checkpoint : NULL, .checkpoint_every = checkpoint_every,
        .user = &r,
    };
    if ((s = icl_train_loop(r.model, r.opt, &data_rng, &lc)) != ICL_OK) {
        cli_fail("training", s);
        goto done;
    }
    if (save && (s = save_run(&r, save)) != ICL_OK) {
        cli_fail(save, s);
        goto done;
    }
    if (save && !quiet)
        fprintf(stderr, "icl train: saved %s\n", save);
    if (r.family && eval_out && final_eval(&r, eval_out))
        goto done;
    result = 0;
done:
    train_dist_end(dist, result);
    if (r.csv)
        fclose(r.csv);
    if (r.task_csv)
        fclose(r.task_csv);
    icl_optimizer_free(r.opt);
    icl_model_free(r.model);
    icl_task_batch_free(&r.tb);
    icl_task_family_free(r.family);
    free(r.toy_tokens);
    free(r.toy_targets);
    free(r.toy_weights);
    return result;
}
