/* icl info: a checkpoint's metadata and tensor table, and a task family's
 * tasks, token ids and roles. */
#include <stdio.h>
#include "icl_cli.h"

/* The family's ids, one "kind id name" line each, so that scripts can grep
 * them: tasks, tokens (token mode) and roles. */
static void print_family(const icl_task_family *f) {
    int token = icl_task_family_mode(f) == ICL_MODE_TOKEN, T = 0;
    int n = icl_task_family_default_examples(f);
    icl_task_family_prompt_len(f, n, &T);
    printf("family %s (%s mode)\n", icl_task_family_spec(f), token ? "token" : "vector");
    if (token)
        printf("prompt: %d input tokens, %d answer tokens, %d examples by default, %d positions\n",
               icl_task_family_input_len(f), icl_task_family_answer_len(f), n, T);
    else
        printf("prompt: x of dimension %d (d_in %d, d_out %d), %d examples by default, %d positions\n",
               icl_task_family_dim(f), icl_task_family_d_in(f), icl_task_family_d_out(f), n, T);
    printf("# task ID NAME: the task ids of prompts, eval and probe outputs\n");
    for (int t = 0; t < icl_task_family_num_tasks(f); t++) printf("task %d %s\n", t, icl_task_family_task_name(f, t));
    if (token) {
        printf("# token ID NAME: the vocabulary (%d tokens) of --input arrays and logits\n",
               icl_task_family_vocab_size(f));
        for (int v = 0; v < icl_task_family_vocab_size(f); v++)
            printf("token %d %s\n", v, icl_task_family_token_name(f, v));
    }
    printf("# role ID NAME: the position roles of a prompt (--role options)\n");
    for (int r = 0; r < ICL_ROLE_COUNT; r++) printf("role %d %s\n", r, icl_role_name((icl_role)r));
}

int cmd_info(int argc, char **argv) {
    const char *path[1], *task = NULL;
    int n = 0, tokens = 0;
    cli_option opts[] = {
        {"--task", OPT_STRING, &task, "print this task family's tasks, token ids and roles instead"},
        {"--tokens", OPT_FLAG, &tokens, "print the checkpoint's family (its user.task) after the tensors"},
    };
    int rc = cli_parse(argc, argv, 2, opts, sizeof opts / sizeof opts[0],
                       "usage: icl info M.safetensors [--tokens]\n"
                       "       icl info --task SPEC\n\n"
                       "Print a checkpoint's config and tensors; with --tokens or --task, a task family's\n"
                       "task ids, token ids (token families) and position roles, one \"task|token|role ID NAME\"\n"
                       "line each.",
                       path, 1, &n);
    if (rc)
        return rc < 0 ? 2 : 0;
    if ((task != NULL) == (n == 1) || (tokens && n != 1)) {
        fprintf(stderr, "icl info: expected one checkpoint path or --task SPEC (see --help)\n");
        return 2;
    }
    char spec[1024];
    icl_status s;
    if (n == 1) {
        if ((s = icl_checkpoint_describe(path[0], cli_print_line, NULL)) != ICL_OK)
            return cli_fail(path[0], s);
        if (!tokens)
            return 0;
        if ((s = icl_checkpoint_read_meta(path[0], "user.task", spec, sizeof spec)) != ICL_OK) {
            fprintf(stderr, "icl info: %s does not name the task family it was trained on; use --task SPEC\n",
                    path[0]);
            return 1;
        }
        task = spec;
    }
    icl_task_family *f;
    if ((s = icl_task_family_create(&f, task)) != ICL_OK)
        return cli_fail("--task", s);
    print_family(f);
    icl_task_family_free(f);
    return 0;
}
