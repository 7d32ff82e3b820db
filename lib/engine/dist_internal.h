/* Internal: the collectives the distributed training step needs. Rank order
 * fixes every sum, so the result does not depend on MPI's algorithms. */
#ifndef ICL_LIB_DIST_INTERNAL_H
#define ICL_LIB_DIST_INTERNAL_H

#include <stddef.h>
#include "icl/dist.h"

/* all (size*n): every rank's `local` (n doubles), rank 0's first. */
icl_status icl_dist_allgather_doubles(icl_dist *d, double *all, const double *local, int n);
/* buf (n floats, host) := the sum over the ranks, added in rank order, on every rank. */
icl_status icl_dist_sum_floats(icl_dist *d, float *buf, size_t n);
/* A host buffer of at least n floats owned by d, for staging gradients. */
icl_status icl_dist_host_buffer(icl_dist *d, size_t n, float **out);

#endif
