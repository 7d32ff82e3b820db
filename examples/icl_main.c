/* icl: train, run, inspect and benchmark libicl models from the shell. */
#include <stdio.h>
#include <string.h>
#include "icl_cli.h"

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
} commands[] = {
    {"train", cmd_train, "train a model (built-in toy tasks or ICL task families)"},
    {"eval", cmd_eval, "accuracy / MSE against the number of in-context examples, with baselines"},
    {"forward", cmd_forward, "run a saved model on an .npy input, write logits/outputs as .npy"},
    {"probe", cmd_probe, "run a probe on a saved model (icl probe --help lists them)"},
    {"info", cmd_info, "show a checkpoint's config and tensor table"},
    {"sample", cmd_sample, "write a batch of prompts of a task family as .npy arrays and text"},
    {"bench", cmd_bench, "measure training throughput"},
    {"sweep", cmd_sweep, "seeds x sizes x tasks as independent runs (MPI ranks, Slurm arrays), and their mean ± sd"},
};

static void usage(void) {
    printf("usage: icl <command> [options]   (icl <command> --help for its options; icl --version)\n\n"
           "Exit status: 0 success, 1 runtime error, 2 usage error (bad command or options).\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        printf("  %-10s %s\n", commands[i].name, commands[i].help);
    printf("\nlibicl %s\n", ICL_VERSION_STRING);
}

int main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage();
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("icl %s\n", ICL_VERSION_STRING);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc, argv);
    fprintf(stderr, "icl: unknown command \"%s\"\n", argv[1]);
    usage();
    return 2;
}
