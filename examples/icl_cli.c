/* Option parsing and small helpers shared by the icl subcommands. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "icl_cli.h"

static void print_help(const char *usage, const cli_option *opts, int n_opts) {
    printf("%s\n", usage);
    if (n_opts)
        printf("\noptions:\n");
    for (int i = 0; i < n_opts; i++) {
        const char *arg = opts[i].kind == OPT_FLAG ? "" : opts[i].kind == OPT_STRING ? " S" : " N";
        char left[64];
        snprintf(left, sizeof left, "%s%s", opts[i].name, arg);
        printf("  %-22s %s\n", left, opts[i].help);
    }
    printf("  %-22s %s\n", "--help", "show this help");
}

/* The allowed values of option o: its entry in ranges, else its type's range. */
static void option_range(const cli_option *o, const cli_range *ranges, int n_ranges, double *lo, double *hi) {
    *lo = o->kind == OPT_INT ? (double)INT_MIN : o->kind == OPT_LONG ? (double)LONG_MIN : -HUGE_VAL;
    *hi = o->kind == OPT_INT ? (double)INT_MAX : o->kind == OPT_LONG ? (double)LONG_MAX : HUGE_VAL;
    for (int i = 0; i < n_ranges; i++)
        if (strcmp(ranges[i].name, o->name) == 0) {
            *lo = ranges[i].min > *lo ? ranges[i].min : *lo;
            *hi = ranges[i].max < *hi ? ranges[i].max : *hi;
        }
}

/* Every numeric option goes through here: whole numbers may be written as
 * 1000 or 1e3, and every value is checked against the option's range. */
static int parse_value(const cli_option *o, const char *text, const cli_range *ranges, int n_ranges) {
    if (o->kind == OPT_STRING) {
        *(const char **)o->target = text;
        return 0;
    }
    int whole = o->kind != OPT_FLOAT;
    char *end = NULL;
    errno = 0;
    long long i = whole ? strtoll(text, &end, 10) : 0;
    int is_int = whole && end != text && !*end && !errno;
    double v = is_int ? (double)i : whole ? strtod(text, &end) : (double)strtof(text, &end);
    if (!is_int && (end == text || *end || !isfinite(v) || (errno == ERANGE && v != 0))) {
        fprintf(stderr, "icl: %s: \"%s\" is not a%s number\n", o->name, text, whole ? " whole" : " finite");
        return -1;
    }
    if (whole && !is_int && v != floor(v)) {
        fprintf(stderr, "icl: %s: %s is not a whole number\n", o->name, text);
        return -1;
    }
    double lo, hi, type_lo, type_hi;
    option_range(o, ranges, n_ranges, &lo, &hi);
    option_range(o, NULL, 0, &type_lo, &type_hi);
    if (v < lo || v > hi || (whole && v >= 0x1p63)) {
        if (hi >= type_hi)
            fprintf(stderr, "icl: %s %s is out of range: it must be at least %.17g\n", o->name, text, lo);
        else if (lo <= type_lo)
            fprintf(stderr, "icl: %s %s is out of range: it must be at most %.17g\n", o->name, text, hi);
        else
            fprintf(stderr, "icl: %s %s is out of range: it must be in [%.17g, %.17g]\n", o->name, text, lo, hi);
        return -1;
    }
    if (o->kind == OPT_INT)
        *(int *)o->target = is_int ? (int)i : (int)v;
    else if (o->kind == OPT_LONG)
        *(long *)o->target = is_int ? (long)i : (long)v;
    else
        *(float *)o->target = (float)v;
    return 0;
}

static int parse_args(int argc, char **argv, int first, const cli_option *opts, int n_opts, const cli_range *ranges,
                      int n_ranges, const char *usage, const char **positional, int max_positional,
                      int *n_positional) {
    int np = 0;
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            print_help(usage, opts, n_opts);
            return 1;
        }
        if (strncmp(a, "--", 2) != 0) {
            if (np >= max_positional) {
                fprintf(stderr, "icl: unexpected argument \"%s\" (see --help)\n", a);
                return -1;
            }
            positional[np++] = a;
            continue;
        }
        const cli_option *o = NULL;
        for (int k = 0; k < n_opts; k++)
            if (strcmp(opts[k].name, a) == 0) o = &opts[k];
        if (!o) {
            fprintf(stderr, "icl: unknown option %s (see --help)\n", a);
            return -1;
        }
        if (o->kind == OPT_FLAG) {
            *(int *)o->target = 1;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "icl: %s needs a value\n", a);
            return -1;
        }
        if (parse_value(o, argv[++i], ranges, n_ranges) != 0)
            return -1;
    }
    if (n_positional)
        *n_positional = np;
    return 0;
}

int cli_parse(int argc, char **argv, int first, const cli_option *opts, int n_opts, const char *usage,
              const char **positional, int max_positional, int *n_positional) {
    return parse_args(argc, argv, first, opts, n_opts, NULL, 0, usage, positional, max_positional, n_positional);
}

int cli_fail(const char *what, icl_status s) {
    fprintf(stderr, "icl: %s: %s: %s\n", what, icl_status_name(s), icl_last_error());
    return 1;
}

void cli_print_line(void *user, const char *line) {
    (void)user;
    printf("%s\n", line);
}

double cli_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int cli_backend(const char *flag_value, icl_backend_kind *out) {
    const char *name = flag_value ? flag_value : getenv("ICL_BACKEND");
    if (!name || !*name)
        name = "cpu";
    icl_status s = icl_backend_parse(name, out);
    return s == ICL_OK ? 0 : cli_fail("backend", s);
}

int cli_parse_with_backend(int argc, char **argv, int first, const cli_option *opts, int n_opts, const char *usage,
                           const char *const *backend_name, icl_backend_kind *backend, int *exit_status) {
    int rc = cli_parse(argc, argv, first, opts, n_opts, usage, NULL, 0, NULL);
    if (rc) {
        *exit_status = rc < 0 ? 2 : 0;
        return 0;
    }
    *exit_status = 1;
    return cli_backend(*backend_name, backend) == 0;
}

int cli_load_model_and_task(const char *model_path, const char *task_spec, const char *backend_name,
                            icl_model **model, icl_task_family **family) {
    *model = NULL;
    *family = NULL;
    if (!model_path) {
        fprintf(stderr, "icl: --model is required (see --help)\n");
        return 1;
    }
    icl_backend_kind backend;
    if (cli_backend(backend_name, &backend))
        return 1;
    char spec[1024];
    if (!task_spec) {
        icl_status s = icl_checkpoint_read_meta(model_path, "user.task", spec, sizeof spec);
        /* only a readable checkpoint without the key calls for --task; a
         * missing or malformed file gets its own error */
        if (s == ICL_ERR_INVALID_ARG) {
            fprintf(stderr, "icl: %s does not name the task family it was trained on; pass --task\n", model_path);
            return 1;
        }
        if (s != ICL_OK)
            return cli_fail(model_path, s);
        task_spec = spec;
    }
    icl_status s = icl_task_family_create(family, task_spec);
    if (s != ICL_OK)
        return cli_fail("--task", s);
    s = icl_checkpoint_load_model(model_path, backend, model);
    if (s != ICL_OK) {
        icl_task_family_free(*family);
        *family = NULL;
        return cli_fail(model_path, s);
    }
    return 0;
}

/* Parse the shared and the probe's own options and load the model; 1 when
 * the probe should run, else 0 with *exit_status set. */
static int probe_begin(cli_probe *p, int argc, char **argv, const cli_option *own, int n_own, int *exit_status) {
    const cli_probe_spec *spec = p->spec;
    cli_option opts[CLI_MAX_PROBE_OPTIONS + 7];
    *exit_status = 2;
    if (n_own < 0 || n_own > CLI_MAX_PROBE_OPTIONS) {
        fprintf(stderr, "icl: %d probe options, at most %d\n", n_own, CLI_MAX_PROBE_OPTIONS);
        return 0;
    }
    snprintf(p->out_default, sizeof p->out_default, "out/probe-%s", spec->name);
    snprintf(p->out_help, sizeof p->out_help, "output directory [%s]", p->out_default);
    p->out = p->out_default;
    p->seed = 1;
    int n = 0;
    opts[n++] = (cli_option){"--model", OPT_STRING, &p->model_path, "checkpoint (.safetensors)"};
    opts[n++] = (cli_option){"--task", OPT_STRING, &p->task, "task family spec [the checkpoint's user.task]"};
    opts[n++] = (cli_option){"--tasks", OPT_STRING, &p->tasks_list,
                             spec->tasks_help ? spec->tasks_help : "comma-separated task names [all]"};
    for (int i = 0; i < n_own; i++) opts[n++] = own[i];
    opts[n++] = (cli_option){"--seed", OPT_LONG, &p->seed,
                             spec->seed_help ? spec->seed_help : "seed of the prompts [1]"};
    opts[n++] = (cli_option){"--out", OPT_STRING, &p->out, p->out_help};
    opts[n++] = (cli_option){"--backend", OPT_STRING, &p->backend, "cpu | cuda [$ICL_BACKEND or cpu]"};
    opts[n++] = (cli_option){"--save-inputs", OPT_FLAG, &p->save_inputs,
                             "also write the prompts, representations and per-prompt values behind the "
                             "figures into <out>/inputs/"};
    int rc = cli_parse(argc, argv, 3, opts, n, spec->usage, NULL, 0, NULL);
    if (rc) {
        *exit_status = rc < 0 ? 2 : 0;
        return 0;
    }
    if (!p->model_path) {
        fprintf(stderr, "icl probe %s: --model is required (see --help)\n", spec->name);
        return 0;
    }
    if (p->save_inputs && !spec->saves_inputs) {
        fprintf(stderr, "icl probe %s: --save-inputs is not supported by this probe yet\n", spec->name);
        return 0;
    }
    *exit_status = 1;
    p->o.dir = p->out;
    if (cli_load_model_and_task(p->model_path, p->task, p->backend, &p->model, &p->family) ||
        cli_check_finite_params(p->model_path, p->model))
        return 0;
    /* the same refusal as icl eval's: a family the model was not trained on */
    if (p->task && cli_check_task_matches(p->model_path, p->model, p->family)) {
        *exit_status = 2;
        return 0;
    }
    return 1;
}

int cli_probe_main(const cli_probe_spec *spec, int argc, char **argv, const cli_option *own, int n_own,
                   cli_probe_fn run, void *options) {
    cli_probe *p = calloc(1, sizeof *p);
    if (!p) {
        fprintf(stderr, "icl probe %s: out of memory\n", spec->name);
        return 1;
    }
    p->spec = spec;
    int rc;
    if (probe_begin(p, argc, argv, own, n_own, &rc))
        rc = run(p, options);
    icl_sidecar_free(p->o.sc);
    icl_task_family_free(p->family);
    icl_model_free(p->model);
    free(p);
    return rc;
}

int cli_probe_tasks(cli_probe *p, const icl_task_family *f, int cap, int every_task) {
    if (cap > CLI_MAX_TASKS)
        cap = CLI_MAX_TASKS;
    p->tasks = NULL;
    p->n_tasks = 0;
    if (every_task) {
        int n = icl_task_family_num_tasks(f);
        p->n_tasks = n < cap ? n : cap;
        for (int t = 0; t < p->n_tasks; t++) p->task_ids[t] = t;
        p->tasks = p->task_ids;
    }
    if (!p->tasks_list)
        return 0;
    icl_status s = icl_task_family_parse_tasks(f, p->tasks_list, p->task_ids, cap, &p->n_tasks);
    if (s != ICL_OK)
        return cli_fail("--tasks", s);
    p->tasks = p->task_ids;
    return 0;
}

int cli_probe_outputs(cli_probe *p, const icl_task_family *f) {
    if (cli_make_dir(p->out))
        return 1;
    char inputs[4096];
    snprintf(inputs, sizeof inputs, "%s/inputs", p->out);
    if (p->save_inputs && cli_make_dir(inputs))
        return 1;
    icl_status s = icl_sidecar_create(p->spec->name, (uint64_t)p->seed, &p->o.sc);
    if (s == ICL_OK && (s = icl_sidecar_set_string(p->o.sc, "model", p->model_path)) == ICL_OK)
        s = icl_sidecar_set_string(p->o.sc, "task", icl_task_family_spec(f));
    return s == ICL_OK ? 0 : cli_fail("sidecar", s);
}

icl_status cli_probe_write_sidecar(cli_probe *p) {
    char name[128];
    snprintf(name, sizeof name, "%s.json", p->spec->name);
    for (char *c = name; *c; c++)
        if (*c == '-') *c = '_';
    snprintf(p->o.path, sizeof p->o.path, "%s/%s", p->o.dir, name);
    return icl_sidecar_write(p->o.sc, p->o.path);
}

icl_status cli_sidecar_model_config(icl_sidecar *sc, const icl_model *m) {
    char json[2048];
    CLI_TRY(icl_config_to_json(icl_model_config(m), json, sizeof json));
    return icl_sidecar_set_json(sc, "model_config", json);
}

int cli_parse_counts(const char *text, int *v, int cap) {
    int n = 0;
    const char *p = text;
    while (*p) {
        char *end;
        long x = strtol(p, &end, 10);
        if (end == p || x < 0 || x > 100000 || n == cap || (*end != ',' && *end != '\0'))
            return -1;
        v[n++] = (int)x;
        p = *end == ',' ? end + 1 : end;
    }
    return n;
}

int cli_make_dir(const char *dir) {
    /* like mkdir -p: create each missing parent first */
    char path[4096];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path) {
        fprintf(stderr, "icl: directory name too long: %s\n", dir);
        return 1;
    }
    for (char *p = path + 1;; p++) {
        char c = *p;
        if (c != '/' && c != '\0')
            continue;
        *p = '\0';
        if (mkdir(path, 0755) != 0 && errno != EEXIST) {
            fprintf(stderr, "icl: cannot create directory %s: %s\n", path, strerror(errno));
            return 1;
        }
        *p = c;
        if (c == '\0')
            break;
    }
    if (access(dir, W_OK) != 0) {
        fprintf(stderr, "icl: cannot write to directory %s: %s\n", dir, strerror(errno));
        return 1;
    }
    return 0;
}

int cli_site_parse(const cli_site *site, const icl_task_family *f, int min_examples, icl_repr_site *out) {
    icl_status s = icl_repr_site_parse(f, site->role, site->nth, site->pool, min_examples, out);
    return s == ICL_OK ? 0 : cli_fail("representation site", s);
}

void cli_site_record(const cli_site *site, icl_sidecar *sc, const char *nth_default) {
    icl_sidecar_set_string(sc, "role", site->role ? site->role : "default");
    icl_sidecar_set_string(sc, "nth", site->nth ? site->nth : nth_default);
    icl_sidecar_set_string(sc, "pool", site->pool ? site->pool : "last");
}

int cli_default_baselines(const icl_task_family *f, icl_baseline *out) {
    static const icl_baseline_kind kinds[CLI_N_BASELINES] = {
        ICL_BASELINE_LEAST_SQUARES, ICL_BASELINE_RIDGE, ICL_BASELINE_LASSO,
        ICL_BASELINE_ORACLE,        ICL_BASELINE_KNN,   ICL_BASELINE_AVERAGING,
    };
    int coords[64], r, n = 0;
    int has_bases = icl_task_family_basis(f, 0, coords, 64, &r) == ICL_OK;
    for (int i = 0; i < CLI_N_BASELINES; i++)
        if (kinds[i] != ICL_BASELINE_ORACLE || has_bases)
            out[n++] = icl_baseline_default(kinds[i]);
    return n;
}

const char *cli_out_path(cli_outputs *o, const char *name) {
    snprintf(o->path, sizeof o->path, "%s/%s", o->dir, name);
    icl_sidecar_add_file(o->sc, name);
    return o->path;
}

icl_status cli_write_doubles(cli_outputs *o, const char *name, const double *x, int ndim, const size_t *shape) {
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    float *f = malloc((n ? n : 1) * sizeof *f);
    if (!f) {
        fprintf(stderr, "icl: out of memory writing %s\n", name);
        return ICL_ERR_NOMEM;
    }
    for (size_t i = 0; i < n; i++) f[i] = (float)x[i];
    icl_status s = icl_npy_write(cli_out_path(o, name), ICL_DTYPE_F32, ndim, shape, f);
    free(f);
    return s;
}

icl_status cli_table_create(cli_outputs *o, const char *name, int n_columns, const char *const *columns,
                            icl_csv **csv) {
    return icl_csv_create(cli_out_path(o, name), n_columns, columns, csv);
}

icl_status cli_csv_cells(icl_csv *csv, const cli_cell *cells, int n) {
    for (int i = 0; i < n; i++) {
        const cli_cell *c = &cells[i];
        if (c->kind == 's')
            icl_csv_string(csv, c->s);
        else if (c->kind == 'i')
            icl_csv_int(csv, c->i);
        else
            icl_csv_number(csv, c->n);
    }
    return icl_csv_end_row(csv);
}

int cli_parse_ranged(int argc, char **argv, int first, const cli_option *opts, int n_opts, const cli_range *ranges,
                     int n_ranges, const char *usage, const char **positional, int max_positional,
                     int *n_positional) {
    return parse_args(argc, argv, first, opts, n_opts, ranges, n_ranges, usage, positional, max_positional,
                      n_positional);
}

int cli_option_given(int argc, char **argv, int first, const cli_option *opts, int n_opts, const char *name) {
    for (int i = first; i < argc; i++) {
        if (strcmp(argv[i], name) == 0)
            return 1;
        for (int k = 0; k < n_opts; k++)
            if (strcmp(opts[k].name, argv[i]) == 0 && opts[k].kind != OPT_FLAG)
                i++;
    }
    return 0;
}

int cli_check_output_file(const char *option, const char *path) {
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        fprintf(stderr, "icl: %s %s is a directory; name a file\n", option, path);
        return 1;
    }
    char dir[4096];
    if (snprintf(dir, sizeof dir, "%s", path) >= (int)sizeof dir) {
        fprintf(stderr, "icl: %s: path too long: %s\n", option, path);
        return 1;
    }
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else
        slash[slash == dir] = '\0'; /* "/x" keeps "/" */
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "icl: %s %s: directory %s does not exist; create it first\n", option, path, dir);
        return 1;
    }
    if (access(dir, W_OK | X_OK) != 0 || (access(path, F_OK) == 0 && access(path, W_OK) != 0)) {
        fprintf(stderr, "icl: %s %s: cannot write there: %s\n", option, path, strerror(errno));
        return 1;
    }
    return 0;
}

int cli_check_task_matches(const char *model_path, const icl_model *model, const icl_task_family *family) {
    const icl_config *c = icl_model_config(model);
    const char *name = icl_task_family_name(family);
    char spec[1024];
    icl_task_family *trained = NULL;
    if (icl_checkpoint_read_meta(model_path, "user.task", spec, sizeof spec) == ICL_OK && spec[0] &&
        icl_task_family_create(&trained, spec) == ICL_OK) {
        int same = strcmp(icl_task_family_name(trained), name) == 0;
        icl_task_family_free(trained);
        if (!same) {
            fprintf(stderr, "icl: --task %s: %s was trained on %s, not on family %s; leave --task out or pass a %.*s spec\n",
                    icl_task_family_spec(family), model_path, spec, name, (int)strcspn(spec, ":"), spec);
            return 1;
        }
    }
    if (icl_task_family_mode(family) != c->mode ||
        (c->mode == ICL_MODE_TOKEN && icl_task_family_vocab_size(family) > c->vocab_size) ||
        (c->mode == ICL_MODE_VECTOR &&
         (icl_task_family_d_in(family) != c->d_in || icl_task_family_d_out(family) != c->d_out))) {
        fprintf(stderr, "icl: --task %s: its prompts do not fit %s (%s mode, %d tokens, d_in %d, d_out %d)\n",
                icl_task_family_spec(family), model_path, c->mode == ICL_MODE_TOKEN ? "token" : "vector",
                c->vocab_size, c->d_in, c->d_out);
        return 1;
    }
    return 0;
}

double cli_physical_memory(void) {
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    return pages > 0 && size > 0 ? (double)pages * (double)size : 0.0;
}

int cli_check_finite_params(const char *model_path, const icl_model *model) {
    size_t n = icl_model_num_params(model);
    float *p = malloc((n ? n : 1) * sizeof *p);
    if (!p || icl_model_get_params(model, p, n) != ICL_OK) {
        free(p);
        fprintf(stderr, "icl: %s: cannot read the parameters back: %s\n", model_path, p ? icl_last_error() : "out of memory");
        return 1;
    }
    int bad = 0;
    for (int t = 0; t < icl_model_num_tensors(model) && !bad; t++) {
        const icl_param_info *info = icl_model_tensor(model, t);
        for (size_t k = 0; k < info->numel && !bad; k++)
            if (!isfinite(p[info->offset + k])) {
                fprintf(stderr, "icl: %s: tensor %s holds %g at element %zu; the checkpoint was saved from a diverged "
                        "model\n", model_path, info->name, p[info->offset + k], k);
                bad = 1;
            }
    }
    free(p);
    return bad;
}

icl_status cli_save_array(cli_probe *p, const char *name, icl_dtype dtype, int ndim, const size_t *shape,
                          const void *data) {
    char rel[256];
    snprintf(rel, sizeof rel, "inputs/%s", name);
    return icl_npy_write(cli_out_path(&p->o, rel), dtype, ndim, shape, data);
}

icl_status cli_save_doubles(cli_probe *p, const char *name, const double *x, int ndim, const size_t *shape) {
    char rel[256];
    snprintf(rel, sizeof rel, "inputs/%s", name);
    return cli_write_doubles(&p->o, rel, x, ndim, shape);
}

/* One per-position int32 array of every prompt ("tokens", "roles" or
 * "task_ids"), (n, T) padded with -1. */
static icl_status save_positions(cli_probe *p, const char *prefix, const char *what, const icl_prompt *const *ps,
                                 int n, int T, int32_t *buf) {
    for (int i = 0; i < n; i++) {
        const int32_t *v = what[0] == 't' && what[1] == 'o' ? ps[i]->tokens : what[0] == 'r' ? ps[i]->roles
                                                                                             : ps[i]->task_ids;
        for (int t = 0; t < T; t++) buf[(size_t)i * T + t] = t < ps[i]->T ? v[t] : -1;
    }
    char name[128];
    snprintf(name, sizeof name, "%s%s.npy", prefix, what);
    size_t shape[2] = {(size_t)n, (size_t)T};
    return cli_save_array(p, name, ICL_DTYPE_I32, 2, shape, buf);
}

/* The query answer of every prompt: tokens (n, A) or y_q (n, d_out). */
static icl_status save_answers(cli_probe *p, const char *prefix, const icl_prompt *const *ps, int n, void *buf) {
    int token = ps[0]->mode == ICL_MODE_TOKEN, A = ps[0]->answer_len;
    for (int i = 0; i < n; i++) {
        const icl_prompt *q = ps[i];
        if (!token) {
            memcpy((float *)buf + (size_t)i * A, q->target_values + (size_t)q->query_pos * q->d_out,
                   (size_t)A * sizeof(float));
            continue;
        }
        int32_t *row = (int32_t *)buf + (size_t)i * A;
        for (int a = 0, t = 0; a < A; a++, t++) {
            while (t < q->T && q->roles[t] != ICL_ROLE_QUERY_ANSWER) t++;
            row[a] = t < q->T ? q->tokens[t] : -1;
        }
    }
    char name[128];
    snprintf(name, sizeof name, "%sanswers.npy", prefix);
    size_t shape[2] = {(size_t)n, (size_t)A};
    return cli_save_array(p, name, token ? ICL_DTYPE_I32 : ICL_DTYPE_F32, 2, shape, buf);
}

icl_status cli_save_prompts(cli_probe *p, const char *prefix, const icl_prompt *prompts,
                            const icl_prompt *const *ptrs, int n) {
    if (n < 1)
        return ICL_OK;
    const icl_prompt **ps = malloc((size_t)n * sizeof *ps);
    if (!ps)
        return ICL_ERR_NOMEM;
    int T = 0, token = (ptrs ? ptrs[0] : prompts)->mode == ICL_MODE_TOKEN;
    int d = token ? 1 : (ptrs ? ptrs[0] : prompts)->d_in, A = (ptrs ? ptrs[0] : prompts)->answer_len;
    for (int i = 0; i < n; i++) {
        ps[i] = ptrs ? ptrs[i] : &prompts[i];
        if (ps[i]->T > T) T = ps[i]->T;
    }
    size_t cells = (size_t)n * T * d;
    if (cells < (size_t)n * A) cells = (size_t)n * A;
    int32_t *buf = malloc((cells ? cells : 1) * sizeof *buf); /* int32 and float32 share the size */
    icl_status s = buf ? ICL_OK : ICL_ERR_NOMEM;
    char name[128];
    if (s == ICL_OK && token)
        s = save_positions(p, prefix, "tokens", ps, n, T, buf);
    if (s == ICL_OK && !token) {
        float *x = (float *)buf;
        for (int i = 0; i < n; i++)
            for (int t = 0; t < T; t++)
                for (int c = 0; c < d; c++)
                    x[((size_t)i * T + t) * d + c] = t < ps[i]->T ? ps[i]->inputs[(size_t)t * d + c] : 0.0f;
        snprintf(name, sizeof name, "%sinputs.npy", prefix);
        size_t shape[3] = {(size_t)n, (size_t)T, (size_t)d};
        s = cli_save_array(p, name, ICL_DTYPE_F32, 3, shape, x);
    }
    if (s == ICL_OK)
        s = save_positions(p, prefix, "roles", ps, n, T, buf);
    if (s == ICL_OK)
        s = save_positions(p, prefix, "task_ids", ps, n, T, buf);
    if (s == ICL_OK) {
        for (int i = 0; i < n; i++) buf[i] = ps[i]->task;
        snprintf(name, sizeof name, "%sprompt_task.npy", prefix);
        size_t len = (size_t)n;
        s = cli_save_array(p, name, ICL_DTYPE_I32, 1, &len, buf);
    }
    if (s == ICL_OK)
        s = save_answers(p, prefix, ps, n, buf);
    free(buf);
    free(ps);
    return s;
}

icl_status cli_save_repr(cli_probe *p, const char *prefix, const icl_repr_set *r) {
    char name[128];
    snprintf(name, sizeof name, "%sX.npy", prefix);
    size_t shape[3] = {(size_t)r->levels, (size_t)r->n, (size_t)r->d}, n = (size_t)r->n;
    CLI_TRY(cli_save_array(p, name, ICL_DTYPE_F32, 3, shape, r->X));
    if (!r->score)
        return ICL_OK;
    snprintf(name, sizeof name, "%sscore.npy", prefix);
    return cli_save_doubles(p, name, r->score, 1, &n);
}
