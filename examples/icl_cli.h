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

/* The allowed values of a numeric option (inclusive); options without an
 * entry accept their type's whole range. */
typedef struct {
    const char *name; /* "--steps" */
    double min, max;
} cli_range;

/* cli_parse with per-option ranges: a value outside its range, a fraction
 * for a whole-number option (1e3 is whole) or a non-finite float is refused
 * with the option's name and range. */
int cli_parse_ranged(int argc, char **argv, int first, const cli_option *opts, int n_opts, const cli_range *ranges,
                     int n_ranges, const char *usage, const char **positional, int max_positional,
                     int *n_positional);

/* 1 if option `name` appears in argv[first..argc) (values of other options
 * are skipped as cli_parse does), else 0. */
int cli_option_given(int argc, char **argv, int first, const cli_option *opts, int n_opts, const char *name);

/* An output file the command will write: its directory exists and is
 * writable, and the path is not a directory. Prints what is wrong, naming
 * the option, and returns 1; 0 when writable. */
int cli_check_output_file(const char *option, const char *path);

/* Refuse a --task family other than the one the checkpoint at model_path was
 * trained on (its user.task), or one whose prompts the model cannot read.
 * Prints the reason and returns 1; 0 when they match. */
int cli_check_task_matches(const char *model_path, const icl_model *model, const icl_task_family *family);

/* Refuse a loaded model whose parameters hold NaN or Inf (a diverged run's
 * checkpoint): prints the first bad tensor of model_path and returns 1. */
int cli_check_finite_params(const char *model_path, const icl_model *model);

/* Physical memory of this machine in bytes, 0 when unknown. */
double cli_physical_memory(void);

/* Print "icl: <what>: <status name>: <last error>" to stderr and return 1. */
int cli_fail(const char *what, icl_status s);

/* Print one line to stdout: the line callback of icl_checkpoint_describe and icl_point_catalogue. */
void cli_print_line(void *user, const char *line);

/* Seconds on a monotonic clock. */
double cli_now(void);

/* Backend from --backend, else the ICL_BACKEND environment variable, else cpu. */
int cli_backend(const char *flag_value, icl_backend_kind *out);

/* cli_parse of argv[first..) without positional arguments, then the backend
 * *backend_name names (an option of opts). Returns 1 to go on; otherwise 0
 * with *exit_status set: 0 after --help, 2 for bad options, 1 for a bad backend. */
int cli_parse_with_backend(int argc, char **argv, int first, const cli_option *opts, int n_opts, const char *usage,
                           const char *const *backend_name, icl_backend_kind *backend, int *exit_status);

/* Load a checkpoint and the task family it was trained on (its "user.task"
 * metadata, unless task_spec overrides it). Prints the error and returns 1 on
 * failure. */
int cli_load_model_and_task(const char *model_path, const char *task_spec, const char *backend_name,
                            icl_model **model, icl_task_family **family);

/* Return a failing status from the enclosing function. */
#define CLI_TRY(call)                    \
    do {                                 \
        icl_status cli_try_s_ = (call);  \
        if (cli_try_s_ != ICL_OK)        \
            return cli_try_s_;           \
    } while (0)

/* Comma-separated integers in [0, 100000] into v (at most cap); how many,
 * or -1 on bad input (nothing printed). */
int cli_parse_counts(const char *text, int *v, int cap);

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
/* Open the CSV table dir/name (listed in the sidecar) with its columns (n_columns). */
icl_status cli_table_create(cli_outputs *o, const char *name, int n_columns, const char *const *columns,
                            icl_csv **csv);

/* One cell of a CSV row: cli_str, cli_int or cli_num. */
typedef struct {
    char kind; /* 's', 'i' or 'n' */
    const char *s;
    int64_t i;
    double n;
} cli_cell;

static inline cli_cell cli_str(const char *s) { return (cli_cell){'s', s, 0, 0.0}; }
static inline cli_cell cli_int(int64_t i) { return (cli_cell){'i', NULL, i, 0.0}; }
static inline cli_cell cli_num(double n) { return (cli_cell){'n', NULL, 0, n}; }

/* Append cells (n) and end the row. The table keeps its first error, so a
 * caller may write on and learn it here or from icl_csv_close. */
icl_status cli_csv_cells(icl_csv *csv, const cli_cell *cells, int n);
/* cli_csv_row(csv, cli_int(l), cli_str(name), cli_num(x)): one row. */
#define cli_csv_row(csv, ...)                              \
    cli_csv_cells((csv), (const cli_cell[]){__VA_ARGS__}, \
                  (int)(sizeof((const cli_cell[]){__VA_ARGS__}) / sizeof(cli_cell)))

/* A probe subcommand: what the scaffold needs besides its option table. */
typedef struct {
    /* "task-vectors": the subcommand, the sidecar's probe name, the default
     * directory out/probe-<name> and the sidecar file <name, '-' as '_'>.json */
    const char *name;
    const char *usage;      /* --help text above the options */
    const char *tasks_help; /* what --tasks selects [NULL: "comma-separated task names [all]"] */
    const char *seed_help;  /* what --seed seeds [NULL: "seed of the prompts [1]"] */
    int saves_inputs;       /* 1: the probe implements --save-inputs; 0: it refuses the option */
} cli_probe_spec;

#define CLI_MAX_TASKS 256
#define CLI_MAX_PROBE_OPTIONS 40

/* What every probe shares: the options --model, --task, --tasks, --seed,
 * --out and --backend, the checkpoint and task family they load, the task
 * selection, and the output directory with its sidecar. */
typedef struct {
    const cli_probe_spec *spec;
    const char *model_path, *task, *tasks_list, *out, *backend;
    long seed;
    icl_model *model;
    icl_task_family *family;
    const int *tasks; /* from cli_probe_tasks; NULL: every task */
    int n_tasks;
    int task_ids[CLI_MAX_TASKS];
    cli_outputs o; /* o.dir is --out; o.sc comes from cli_probe_sidecar */
    char out_default[128], out_help[160];
    int save_inputs; /* --save-inputs: also write what the figures are computed from into <out>/inputs/ */
} cli_probe;

/* A probe's own work on the loaded p with its options; the exit status. */
typedef int (*cli_probe_fn)(cli_probe *p, void *options);

/* `icl probe <spec->name>`: parse argv[3..) against the shared options
 * (--model, --task, --tasks first; --seed, --out, --backend last) around the
 * probe's own (n_own), load the model and its task family, run, and free
 * what p holds. Exit status: 0 after --help, 2 for bad options, 1 when
 * loading failed, else run's. */
int cli_probe_main(const cli_probe_spec *spec, int argc, char **argv, const cli_option *own, int n_own,
                   cli_probe_fn run, void *options);

/* Parse --tasks against f (at most cap names) into p->tasks and p->n_tasks.
 * Without --tasks p->tasks is NULL and n_tasks 0, or, with every_task set,
 * the first cap tasks of f. Prints the error and returns 1 on a bad list. */
int cli_probe_tasks(cli_probe *p, const icl_task_family *f, int cap, int every_task);

/* Create the output directory, and the sidecar p->o.sc seeded with --seed
 * with "model" and "task" (the spec of f, the family the probe runs on)
 * recorded. Prints the error and returns 1 on failure. */
int cli_probe_outputs(cli_probe *p, const icl_task_family *f);
/* Write the sidecar to <out>/<name, '-' as '_'>.json; p->o.path holds that path. */
icl_status cli_probe_write_sidecar(cli_probe *p);
/* --save-inputs: write an array as <out>/inputs/<name> (listed in the
 * sidecar as inputs/<name>); dtype ICL_DTYPE_F32 or ICL_DTYPE_I32 of data. */
icl_status cli_save_array(cli_probe *p, const char *name, icl_dtype dtype, int ndim, const size_t *shape,
                          const void *data);
/* cli_save_array of doubles, written as float32. */
icl_status cli_save_doubles(cli_probe *p, const char *name, const double *x, int ndim, const size_t *shape);
/* --save-inputs: the n prompts (ptrs[i], or prompts[i] when ptrs is NULL) as
 * <prefix>tokens.npy (n,T) int32 in token mode or <prefix>inputs.npy
 * (n,T,d_in) float32 in vector mode, <prefix>roles.npy and
 * <prefix>task_ids.npy (n,T) int32, <prefix>prompt_task.npy (n) and
 * <prefix>answers.npy: (n,answer_len) int32 query answer tokens, or
 * (n,d_out) float32 query targets y_q; T is the longest prompt and shorter
 * prompts are padded with -1 (token, role, task id) or 0 (inputs). */
icl_status cli_save_prompts(cli_probe *p, const char *prefix, const icl_prompt *prompts,
                            const icl_prompt *const *ptrs, int n);
/* --save-inputs: the representations r as <prefix>X.npy (levels,n,d) float32
 * and its behaviour scores as <prefix>score.npy (n). */
icl_status cli_save_repr(cli_probe *p, const char *prefix, const icl_repr_set *r);
/* Record the model's config as "model_config". */
icl_status cli_sidecar_model_config(icl_sidecar *sc, const icl_model *m);

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

/* The site the options select on f, for prompts of at least min_examples
 * examples. Prints the error and returns 1 when it does not parse. */
int cli_site_parse(const cli_site *site, const icl_task_family *f, int min_examples, icl_repr_site *out);
/* Record the site options in a probe's sidecar; nth_default names an unset --nth. */
void cli_site_record(const cli_site *site, icl_sidecar *sc, const char *nth_default);

/* The regression baselines written beside a vector family's model error,
 * with default parameters, into out (room for CLI_N_BASELINES); returns how
 * many. The oracle-basis baseline only for families with bases. */
#define CLI_N_BASELINES 6
int cli_default_baselines(const icl_task_family *f, icl_baseline *out);

int cmd_train(int argc, char **argv);
int cmd_probe(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_forward(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_sample(int argc, char **argv);
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
