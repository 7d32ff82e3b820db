/* icl probe <name>: run one probe on a saved model. */
#include <stdio.h>
#include <string.h>
#include "icl_cli.h"

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
} probes[] = {
    {"points", probe_points, "the catalogue of named points with their shapes for a model"},
    {"superposition", probe_superposition, "P(each task's answer) on mixed prompts against proportions (Xiong)"},
    {"logit-lens", probe_logit_lens, "task answer probabilities read out from every layer"},
    {"head-ablation", probe_head_ablation, "change of each task's answer probability when a head is ablated"},
    {"task-vectors", probe_task_vectors, "extract, patch and interpolate task vectors (Hendel, Han)"},
    {"function-vectors", probe_function_vectors, "head indirect effects and function vectors (Todd)"},
    {"decodability", probe_decodability, "task decodability per layer by leave-one-out kNN (Han)"},
    {"rsa", probe_rsa, "representational similarity with task hypotheses, 0-shot vs k-shot (Yousefi)"},
    {"linear", probe_linear, "linear probes (logistic / ridge) per layer with cross-validation"},
    {"attention", probe_attention, "attention from the query to each role and task, per layer and head"},
    {"finetune", probe_finetune, "finetune only the first or the last n layers and compare"},
};

static void usage(void) {
    printf("usage: icl probe <name> [options]   (icl probe <name> --help)\n\nprobes:\n");
    for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++)
        printf("  %-17s %s\n", probes[i].name, probes[i].help);
}

int cmd_probe(int argc, char **argv) {
    if (argc < 3 || strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0) {
        usage();
        return argc < 3 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++)
        if (strcmp(argv[2], probes[i].name) == 0)
            return probes[i].run(argc, argv);
    fprintf(stderr, "icl probe: unknown probe \"%s\"\n", argv[2]);
    usage();
    return 2;
}
