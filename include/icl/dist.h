/* Data-parallel training over MPI ranks (docs/scaling.md).
 *
 * An icl_dist is a communicator-like handle: MPI_COMM_WORLD (duplicated) in a
 * build with MPI once MPI is initialised, otherwise a stub of size 1. The
 * library never initialises MPI on its own: a program either does it itself or
 * asks for it with icl_dist_init.
 *
 * Given to an optimizer (icl_optimizer_set_dist), the handle makes
 * icl_train_step split each micro-batch's prompts over the ranks: every rank
 * passes the same global batch, rank r trains on rows [r*B/N, (r+1)*B/N), the
 * gradients are summed over the ranks in rank order (so a given N is
 * bit-reproducible), and every rank applies the same AdamW update. The loss,
 * the clip norm and the NaN check are those of the global batch. */
#ifndef ICL_DIST_H
#define ICL_DIST_H

#include "icl/status.h"
#include "icl/train.h"

ICL_BEGIN_DECLS

typedef struct icl_dist icl_dist;

/* 1 if this build has MPI (make MPI=1), else 0. */
int icl_dist_compiled(void);
/* 1 if the environment says an MPI launcher (mpirun, srun with PMI/PMIx)
 * started this process, so that MPI_Init will find its peers. */
int icl_dist_launched(void);

/* Initialise MPI (argc/argv may be NULL); nothing if it is initialised
 * already. ICL_ERR_UNSUPPORTED in a build without MPI. */
icl_status icl_dist_init(int *argc, char ***argv);
/* Finalise MPI if this process initialised it and it is still running.
 * Free every icl_dist first. */
icl_status icl_dist_finalize(void);

/* The world's ranks when MPI is initialised, else a handle of size 1. */
icl_status icl_dist_create(icl_dist **out);
void icl_dist_free(icl_dist *d);
/* Rank and number of ranks; a NULL handle is rank 0 of 1. */
int icl_dist_rank(const icl_dist *d);
int icl_dist_size(const icl_dist *d);

/* *any = 1 if `local` is non-zero on any rank: for decisions every rank must
 * take together, such as stopping early. */
icl_status icl_dist_any(icl_dist *d, int local, int *any);
icl_status icl_dist_barrier(icl_dist *d);
/* End every process of the job (MPI_Abort) with `code`: for a tool whose rank
 * failed while the others may wait in a collective. Returns only at size 1. */
void icl_dist_abort(icl_dist *d, int code);

/* Data-parallel icl_train_step over d's ranks (NULL: this process alone).
 * Every rank must call icl_train_step with the same global batches. The
 * handle must outlive the optimizer's steps. */
icl_status icl_optimizer_set_dist(icl_optimizer *o, icl_dist *d);
/* The handle given to o (NULL if none): for a loop's collective decisions. */
icl_dist *icl_optimizer_dist(const icl_optimizer *o);

ICL_END_DECLS
#endif
