/* icl eval: accuracy (token families) or squared error (vector families) of a
 * saved model against the number of in-context examples, 0-shot included,
 * with regression baselines on the very same prompts. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include "icl/eval.h"
#include "icl_cli.h"

int cmd_eval(int argc, char **argv) {
    const char *model_path = NULL, *task = NULL, *out = NULL, *backend_name = NULL, *tasks_list = NULL;
    int prompts = 100, max_examples = -1, batch = 64, quiet = 0;
    long seed = 12345;
    cli_option opts[] = {
        {"--model", OPT_STRING, &model_path, "checkpoint (.safetensors)"},
        {"--task", OPT_STRING, &task, "task family spec the model was trained on [from the checkpoint]"},
        {"--tasks", OPT_STRING, &tasks_list, "comma-separated task names to evaluate [all]"},
        {"--prompts", OPT_INT, &prompts, "prompts per task and number of examples [100]"},
        {"--max-examples", OPT_INT, &max_examples, "evaluate 0..N in-context examples [family default]"},
        {"--batch", OPT_INT, &batch, "prompts per forward pass [64]"},
        {"--seed", OPT_LONG, &seed, "seed of the evaluation prompts [12345]"},
        {"--out", OPT_STRING, &out, "write the tidy CSV (task,k,method,metric,value) here"},
        {"--backend", OPT_STRING, &backend_name, "cpu | cuda [$ICL_BACKEND or cpu]"},
        {"--quiet", OPT_FLAG, &quiet, "no table on stdout"},
    };
    static const cli_range ranges[] = {{"--prompts", 1, INT_MAX}, {"--max-examples", 0, INT_MAX}, {"--batch", 1, INT_MAX}};
    int rc = cli_parse_ranged(argc, argv, 2, opts, sizeof opts / sizeof opts[0], ranges, 3,
                       "usage: icl eval --model M.safetensors [--task SPEC] [--out eval.csv]\n\n"
                       "Accuracy or MSE against the number of in-context examples, with baselines.",
                       NULL, 0, NULL);
    if (rc)
        return rc < 0 ? 2 : 0;
    if (!model_path) {
        fprintf(stderr, "icl eval: --model is required (see --help)\n");
        return 2;
    }
    icl_model *m = NULL;
    icl_task_family *f = NULL;
    icl_eval_result r = {0};
    icl_baseline baselines[CLI_N_BASELINES];
    int task_ids[64], n_task_ids = 0, result = 1;
    icl_status s;
    if (out && cli_check_output_file("--out", out))
        return 1;
    if (cli_load_model_and_task(model_path, task, backend_name, &m, &f))
        return 1;
    if (cli_check_finite_params(model_path, m))
        goto done;
    if (task && cli_check_task_matches(model_path, m, f)) {
        result = 2;
        goto done;
    }
    icl_eval_options o = icl_eval_options_default();
    o.prompts_per_task = prompts;
    o.max_examples = max_examples;
    o.batch = batch;
    o.seed = (uint64_t)seed;
    if (tasks_list) {
        if ((s = icl_task_family_parse_tasks(f, tasks_list, task_ids, 64, &n_task_ids)) != ICL_OK) {
            cli_fail("--tasks", s);
            goto done;
        }
        o.tasks = task_ids;
        o.n_tasks = n_task_ids;
    }
    if (icl_task_family_mode(f) == ICL_MODE_VECTOR) {
        o.n_baselines = cli_default_baselines(f, baselines);
        o.baselines = baselines;
    }
    if ((s = icl_eval_by_examples(m, f, &o, &r)) != ICL_OK) {
        cli_fail("eval", s);
        goto done;
    }
    if (!quiet) {
        int token = r.mode == ICL_MODE_TOKEN;
        printf("%s of the model (%d prompts per cell); rows: tasks, columns: in-context examples k\n",
               token ? "query accuracy" : "query squared error", r.prompts_per_task);
        printf("%-12s", "task \\ k");
        for (int k = 0; k < r.n_k; k++) printf(" %7d", k);
        printf("\n");
        for (int t = 0; t < r.n_tasks; t++) {
            printf("%-12s", icl_task_family_task_name(f, r.tasks[t]));
            for (int k = 0; k < r.n_k; k++) printf(" %7.3f", r.metric[(size_t)t * r.n_k + k]);
            printf("\n");
            for (int b = 0; b < r.n_baselines; b++) {
                printf("  %-10s", r.baseline_names[b]);
                for (int k = 0; k < r.n_k; k++)
                    printf(" %7.3f", r.baseline_metric[((size_t)b * r.n_tasks + t) * r.n_k + k]);
                printf("\n");
            }
        }
    }
    if (out && (s = icl_eval_write_csv(&r, f, out)) != ICL_OK) {
        cli_fail(out, s);
        goto done;
    }
    result = 0;
done:
    icl_eval_result_free(&r);
    icl_task_family_free(f);
    icl_model_free(m);
    return result;
}
