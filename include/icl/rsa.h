/* Representational similarity analysis (Yousefi et al.): how closely each
 * level's similarity structure over prompts follows hypotheses (same task,
 * same answer, caller labels), with permutation p-values. Shared definitions:
 * include/icl/representations.h. */
#ifndef ICL_RSA_H
#define ICL_RSA_H

#include <stdint.h>
#include "icl/rng.h"
#include "icl/representations.h"

ICL_BEGIN_DECLS

/* A hypothesis about which items should be represented alike: labels (same
 * label = alike, H_ab = [l_a == l_b]) or continuous values (H_ab = -|v_a - v_b|);
 * exactly one of the two is non-NULL. */
typedef struct {
    const char *name;
    const int32_t *labels; /* (n) */
    const double *values;  /* (n) */
} icl_rsa_hypothesis;

/* RSM of every level (standardise, cosine: icl_rsa_rsm) and its Spearman
 * alignment with each hypothesis, with a permutation p-value from n_perm
 * shuffles of the labels / values drawn from `rng`: p = (1 + #{rho_perm >=
 * rho - 1e-12}) / (1 + n_perm). rho, p (n_hyp, levels); rsm (levels, n, n)
 * optional. A level whose items are all identical (bit for bit), or whose
 * RSM or hypothesis is constant, gives rho and p NaN. */
icl_status icl_rsa_levels(const icl_repr_set *r, const icl_rsa_hypothesis *hyp, int n_hyp, int n_perm, icl_rng *rng,
                          double *rho, double *p, double *rsm);

#define ICL_RSA_MAX_SHOTS 16

typedef struct {
    int shots[ICL_RSA_MAX_SHOTS]; /* conditions: examples per prompt, e.g. {0, 8} */
    int n_shots;
    int same_queries;       /* 1: every condition keeps the first `shots` examples of prompts generated with
                               max(shots) examples, so conditions share their queries; 0: independent prompts */
    int n_perm;             /* permutations per p-value */
    int keep_rsm;           /* 1: return the RSMs */
    const int32_t *labels;  /* (n) optional extra hypothesis "labels" (item order: task-major) */
    uint64_t seed;          /* permutations */
} icl_rsa_options;

/* Shots {0, the family default}, same queries, 1000 permutations, no RSMs, no extra labels, seed 1. */
icl_rsa_options icl_rsa_options_default(const icl_task_family *f);

/* Hypotheses of the probe, in this order: "task" (same task), "answer"
 * (token: same query answer; vector: the query answer value), then "labels"
 * if given. */
#define ICL_RSA_MAX_HYP 3

typedef struct {
    int n_shots, n_hyp, levels, n;
    int *shots;              /* (n_shots) */
    const char *hyp_names[ICL_RSA_MAX_HYP];
    double *rho, *p;         /* (n_shots, n_hyp, levels) */
    double *score;           /* (n_shots) mean behaviour score */
    int32_t *task_labels;    /* (n) */
    double *rsm;             /* (n_shots, levels, n, n) if keep_rsm, else NULL */
} icl_rsa_result;

/* RSA per condition and level. popt->n_examples and keep_examples are set
 * from the shots (independent prompts use a seed derived from popt->seed and
 * the shot count); site NULL = icl_repr_site_parse(f, NULL, NULL, NULL,
 * min(shots)), a site that exists at every shot count. */
icl_status icl_rsa_run(icl_model *m, const icl_task_family *f, const icl_repr_prompts_options *popt,
                       const icl_repr_site *site, const icl_rsa_options *ropt, icl_rsa_result *out);
void icl_rsa_result_free(icl_rsa_result *r);

/* The prompt set of condition c (0 <= c < ropt->n_shots) of icl_rsa_run with
 * these options: exactly the prompts whose representations give row c of the
 * result, so a caller can export or re-examine them. Free with
 * icl_repr_prompts_free. */
icl_status icl_rsa_condition_prompts(const icl_task_family *f, const icl_repr_prompts_options *popt,
                                     const icl_rsa_options *ropt, int c, icl_repr_prompts *out);

ICL_END_DECLS
#endif
