/* Task decodability (Han et al.): how well the task of a prompt can be read
 * from its representation at each level by a leave-one-out k-nearest-neighbour
 * vote, on one model or over the checkpoints of a training run. Shared
 * definitions (sites, prompt sets, levels): include/icl/representations.h. */
#ifndef ICL_DECODABILITY_H
#define ICL_DECODABILITY_H

#include <stdint.h>
#include "icl/checkpoint.h"
#include "icl/representations.h"

ICL_BEGIN_DECLS

typedef struct {
    int k;               /* neighbours of the leave-one-out vote; ICL_KNN_DEFAULT_K */
    int pairwise_level;  /* level of the task x task matrix; -1 = the level with the highest mean TD */
    int pca_dims;        /* > 0: also the PCA coordinates of the items on this many components per level */
} icl_td_options;

/* k 10, pairwise at the best level, no PCA. */
icl_td_options icl_td_options_default(void);

typedef struct {
    int levels, n_tasks, n, pca_dims;
    double *td;          /* (levels, n_tasks): TD_t = fraction of task t's items whose k nearest others vote t;
                            NaN at a level where every item has the same representation (e.g. the
                            embedding of one token at one position), where the vote is only the tie rule */
    double *td_mean;     /* (levels): unweighted mean over tasks */
    int best_level;      /* argmax of td_mean over the defined levels, the lowest level on ties */
    int pairwise_level;
    double *pairwise;    /* (n_tasks, n_tasks) icl_knn_pairwise at pairwise_level */
    double *score;       /* (n_tasks) mean behaviour score of each task's items (icl_repr_set.score) */
    double *pca;         /* (levels, n, pca_dims) centred coordinates, or NULL */
    double *pca_var;     /* (levels, pca_dims) component variances, or NULL */
    double *td_weighted; /* (levels, n_tasks): TD with distance-weighted votes (icl_knn_decodability_weighted),
                            which do not tie; NaN where td is. td keeps the plain vote */
    double *td_weighted_mean; /* (levels) */
} icl_td_result;

/* TD of every level of `r`, whose items carry labels (n) in [0, n_tasks). */
icl_status icl_td_from_repr(const icl_repr_set *r, const int32_t *labels, int n_tasks, const icl_td_options *opt,
                            icl_td_result *out);
/* Generate the prompt set, collect it at `site` (NULL = icl_repr_site_default)
 * and compute TD. Needs at least 2 tasks. */
icl_status icl_decodability_run(icl_model *m, const icl_task_family *f, const icl_repr_prompts_options *popt,
                                const icl_repr_site *site, const icl_td_options *topt, icl_td_result *out);
void icl_td_result_free(icl_td_result *r);

typedef struct {
    int n_ckpt, levels, n_tasks;
    long *steps;      /* (n_ckpt) */
    double *td;       /* (n_ckpt, levels, n_tasks) */
    double *td_mean;  /* (n_ckpt, levels) */
    double *score;    /* (n_ckpt, n_tasks) mean behaviour score on the same prompts */
} icl_td_curve;

/* TD per (checkpoint, level, task) on one prompt set for every checkpoint
 * of the list (each loaded on `backend`); the checkpoints must share one
 * config. Han et al.'s TD over training (their Figs. 9-10). */
icl_status icl_decodability_curve_run(const icl_checkpoint_list *list, icl_backend_kind backend,
                                      const icl_task_family *f, const icl_repr_prompts_options *popt,
                                      const icl_repr_site *site, int k, icl_td_curve *out);
void icl_td_curve_free(icl_td_curve *c);

ICL_END_DECLS
#endif
