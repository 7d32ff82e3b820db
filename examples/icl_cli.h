/* Shared pieces of the `icl` command-line tool: option parsing, messages,
 * and the subcommand entry points. */
#ifndef ICL_CLI_H
#define ICL_CLI_H

#include <stdint.h>
#include "icl/icl.h"

typedef enum { OPT_FLAG, OPT_INT, OPT_LONG, OPT_FLOAT, OPT_STRING } opt_kind;

typedef struct {
    const char *name;  /* "--steps" */
    opt_kind kind;
    void *target;      /* int*, long*, float*, const char** */
    const char *help;
} cli_option;

/* Parse argv[first..argc) against opts. Positional arguments are stored in
 * positional[] (at most max_positional). Prints the help text and returns 1
 * for --help, -1 (after printing an error) for bad input, 0 on success. */
int cli_parse(int argc, char **argv, int first, const cli_option *opts, int n_opts, const char *usage,
              const char **positional, int max_positional, int *n_positional);

/* Print "icl: <what>: <status name>: <last error>" to stderr and return 1. */
int cli_fail(const char *what, icl_status s);

/* Seconds on a monotonic clock. */
double cli_now(void);

/* Backend from --backend, else the ICL_BACKEND environment variable, else cpu. */
int cli_backend(const char *flag_value, icl_backend_kind *out);

/* Load a checkpoint and the task family it was trained on (its "user.task"
 * metadata, unless task_spec overrides it). Prints the error and returns 1 on
 * failure. */
int cli_load_model_and_task(const char *model_path, const char *task_spec, const char *backend_name,
                            icl_model **model, icl_task_family **family);

/* What every probe subcommand shares: the options --model, --task, --tasks,
 * --seed, --out and --backend, and the checkpoint and task family they load. */
typedef struct {
    const char *model_path, *task, *tasks_list, *out, *backend;
    long seed;
    const char *tasks_help; /* what --tasks selects ["comma-separated task names [all]"] */
    const char *seed_help;  /* what --seed seeds ["seed of the prompts [1]"] */
    char out_help[128];
    icl_model *model;
    icl_task_family *family;
} cli_probe;

#define CLI_MAX_PROBE_OPTIONS 40

/* Parse argv[3..) against the shared options (--model, --task, --tasks first;
 * --seed, --out, --backend last) around the probe's own, then load the model
 * and its task family. Before the call p->out holds the default output
 * directory and p->seed the default seed. Returns 1 when the probe should run;
 * otherwise 0 with *exit_status set (0 after --help, 2 for bad options, 1 when
 * loading failed). */
int cli_probe_begin(cli_probe *p, int argc, char **argv, const cli_option *own, int n_own, const char *usage,
                    int *exit_status);
/* Free the model and family of cli_probe_begin. */
void cli_probe_end(cli_probe *p);

/* The representation-site options --role, --nth and --pool shared by the
 * decodability, RSA, linear-probe and finetune probes (icl_repr_site_parse
 * reads them). The defaults differ per probe and go into the help text. */
typedef struct {
    const char *role, *nth, *pool; /* NULL: the probe's default */
} cli_site;

#define CLI_SITE_OPTIONS(site, role_default, nth_default)                                                 \
    {"--role", OPT_STRING, &(site).role, "representation site: a role or \"all\" [" role_default "]"},   \
        {"--nth", OPT_STRING, &(site).nth, "occurrence of the role, 0 first, -1 last [" nth_default "]"}, \
        {"--pool", OPT_STRING, &(site).pool, "last | mean | max over the selected positions [last]"}

/* Record the site options in a probe's sidecar; nth_default names an unset --nth. */
void cli_site_record(const cli_site *site, icl_sidecar *sc, const char *nth_default);

/* The regression baselines written beside a vector family's model error,
 * with default parameters, into out (room for CLI_N_BASELINES); returns how
 * many. The oracle-basis baseline only for families with bases. */
#define CLI_N_BASELINES 6
int cli_default_baselines(const icl_task_family *f, icl_baseline *out);

/* Create directory `dir` and its missing parents. Prints the error and returns 1 on failure. */
int cli_make_dir(const char *dir);

/* Where a probe writes: files go into dir and are listed in the sidecar. */
typedef struct {
    const char *dir;
    icl_sidecar *sc;
    char path[1024];
} cli_outputs;

/* dir/name (valid until the next call), and name added to the sidecar's file list. */
const char *cli_out_path(cli_outputs *o, const char *name);
/* Write doubles as a float32 .npy file dir/name. */
icl_status cli_write_doubles(cli_outputs *o, const char *name, const double *x, int ndim, const size_t *shape);

int cmd_train(int argc, char **argv);
int cmd_probe(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_forward(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_sweep(int argc, char **argv);

/* `icl probe <name>` entry points, one per examples/icl_probe_<name>.c;
 * argv[2] is the probe name and its options start at argv[3]. */
int probe_points(int argc, char **argv);
int probe_superposition(int argc, char **argv);
int probe_logit_lens(int argc, char **argv);
int probe_head_ablation(int argc, char **argv);
int probe_task_vectors(int argc, char **argv);
int probe_function_vectors(int argc, char **argv);
int probe_decodability(int argc, char **argv);
int probe_rsa(int argc, char **argv);
int probe_linear(int argc, char **argv);
int probe_attention(int argc, char **argv);
int probe_finetune(int argc, char **argv);

#endif
