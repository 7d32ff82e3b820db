/* icl_dist: MPI_COMM_WORLD (duplicated) or a stub of size 1. The gradient sum
 * is a reduce-scatter and an all-gather written with MPI_Alltoall: MPI only
 * moves bytes, and each element is added here in rank order, so a given
 * number of ranks gives the same bits whatever algorithm or placement MPI
 * picks (MPI_Allreduce promises no such thing). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dist_internal.h"
#include "error.h"
#ifdef ICL_WITH_MPI
#include <mpi.h>
#endif

struct icl_dist {
    int rank, size;
#ifdef ICL_WITH_MPI
    MPI_Comm comm; /* MPI_COMM_NULL for the stub */
#endif
    float *host;   /* gradients staged through the host */
    size_t host_n;
    float *scratch; /* 2 * size * chunk floats for the exchange */
    size_t scratch_n;
};

int icl_dist_compiled(void) {
#ifdef ICL_WITH_MPI
    return 1;
#else
    return 0;
#endif
}

int icl_dist_launched(void) {
    /* Open MPI's mpirun, PMIx (srun --mpi=pmix, Open MPI 5), PMI-1/2 (MPICH, srun --mpi=pmi2) */
    static const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE", "PMI_RANK"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i]))
            return 1;
    return 0;
}

#ifdef ICL_WITH_MPI
static int we_initialised; /* icl_dist_init called MPI_Init, so finalize may end it */

static icl_status mpi_fail(int err, const char *what) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(err, msg, &len) != MPI_SUCCESS)
        snprintf(msg, sizeof msg, "error %d", err);
    return icl_fail(ICL_ERR_BACKEND, "%s: %s", what, msg);
}

static int mpi_running(void) {
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    return init && !fin;
}
#endif

icl_status icl_dist_init(int *argc, char ***argv) {
#ifdef ICL_WITH_MPI
    int init = 0;
    MPI_Initialized(&init);
    if (init)
        return ICL_OK;
    /* OpenMP threads never call MPI: only the main thread does */
    int provided = 0;
    int err = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    if (err != MPI_SUCCESS)
        return icl_fail(ICL_ERR_BACKEND, "icl_dist_init: MPI_Init_thread failed (error %d)", err);
    /* report errors as return codes rather than aborting, so they become messages */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    we_initialised = 1;
    return ICL_OK;
#else
    (void)argc;
    (void)argv;
    return icl_fail(ICL_ERR_UNSUPPORTED, "icl_dist_init: this libicl was built without MPI (make MPI=1)");
#endif
}

icl_status icl_dist_finalize(void) {
#ifdef ICL_WITH_MPI
    if (!we_initialised || !mpi_running())
        return ICL_OK;
    int err = MPI_Finalize();
    if (err != MPI_SUCCESS)
        return mpi_fail(err, "icl_dist_finalize: MPI_Finalize");
#endif
    return ICL_OK;
}

icl_status icl_dist_create(icl_dist **out) {
    if (!out)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_dist_create: out is NULL");
    *out = NULL;
    icl_dist *d = calloc(1, sizeof *d);
    if (!d)
        return icl_fail(ICL_ERR_NOMEM, "icl_dist_create: out of memory");
    d->size = 1;
#ifdef ICL_WITH_MPI
    d->comm = MPI_COMM_NULL;
    if (mpi_running()) {
        /* a communicator of our own, so the library's messages never match the program's */
        int err = MPI_Comm_dup(MPI_COMM_WORLD, &d->comm);
        if (err == MPI_SUCCESS)
            err = MPI_Comm_set_errhandler(d->comm, MPI_ERRORS_RETURN);
        if (err == MPI_SUCCESS)
            err = MPI_Comm_rank(d->comm, &d->rank);
        if (err == MPI_SUCCESS)
            err = MPI_Comm_size(d->comm, &d->size);
        if (err != MPI_SUCCESS) {
            icl_dist_free(d);
            return mpi_fail(err, "icl_dist_create");
        }
    }
#endif
    *out = d;
    return ICL_OK;
}

void icl_dist_free(icl_dist *d) {
    if (!d)
        return;
#ifdef ICL_WITH_MPI
    if (d->comm != MPI_COMM_NULL && mpi_running())
        MPI_Comm_free(&d->comm);
#endif
    free(d->host);
    free(d->scratch);
    free(d);
}

int icl_dist_rank(const icl_dist *d) { return d ? d->rank : 0; }
int icl_dist_size(const icl_dist *d) { return d ? d->size : 1; }

icl_status icl_dist_any(icl_dist *d, int local, int *any) {
    if (!any)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_dist_any: any is NULL");
    *any = local != 0;
#ifdef ICL_WITH_MPI
    if (d && d->size > 1) {
        int mine = local != 0;
        int err = MPI_Allreduce(&mine, any, 1, MPI_INT, MPI_MAX, d->comm);
        if (err != MPI_SUCCESS)
            return mpi_fail(err, "icl_dist_any");
    }
#else
    (void)d;
#endif
    return ICL_OK;
}

icl_status icl_dist_barrier(icl_dist *d) {
#ifdef ICL_WITH_MPI
    if (d && d->size > 1) {
        int err = MPI_Barrier(d->comm);
        if (err != MPI_SUCCESS)
            return mpi_fail(err, "icl_dist_barrier");
    }
#else
    (void)d;
#endif
    return ICL_OK;
}

void icl_dist_abort(icl_dist *d, int code) {
#ifdef ICL_WITH_MPI
    if (d && d->size > 1)
        MPI_Abort(d->comm, code);
#else
    (void)d;
    (void)code;
#endif
}

icl_status icl_dist_host_buffer(icl_dist *d, size_t n, float **out) {
    if (n > d->host_n) {
        float *p = realloc(d->host, n * sizeof *p);
        if (!p)
            return icl_fail(ICL_ERR_NOMEM, "distributed step: out of memory for %zu gradients", n);
        d->host = p;
        d->host_n = n;
    }
    *out = d->host;
    return ICL_OK;
}

icl_status icl_dist_allgather_doubles(icl_dist *d, double *all, const double *local, int n) {
    if (d->size == 1) {
        memcpy(all, local, (size_t)n * sizeof *all);
        return ICL_OK;
    }
#ifdef ICL_WITH_MPI
    int err = MPI_Allgather(local, n, MPI_DOUBLE, all, n, MPI_DOUBLE, d->comm);
    if (err != MPI_SUCCESS)
        return mpi_fail(err, "distributed step: MPI_Allgather");
#endif
    return ICL_OK;
}

icl_status icl_dist_sum_floats(icl_dist *d, float *buf, size_t n) {
    if (d->size == 1 || n == 0)
        return ICL_OK;
#ifndef ICL_WITH_MPI
    (void)buf;
#else
    size_t P = (size_t)d->size, chunk = (n + P - 1) / P;
    if (chunk > INT_MAX)
        return icl_fail(ICL_ERR_UNSUPPORTED, "distributed step: %zu floats per rank exceed MPI's int counts", chunk);
    if (2 * P * chunk > d->scratch_n) {
        float *p = realloc(d->scratch, 2 * P * chunk * sizeof *p);
        if (!p)
            return icl_fail(ICL_ERR_NOMEM, "distributed step: out of memory for the gradient exchange");
        d->scratch = p;
        d->scratch_n = 2 * P * chunk;
    }
    float *send = d->scratch, *recv = d->scratch + P * chunk;
    memcpy(send, buf, n * sizeof *buf);
    memset(send + n, 0, (P * chunk - n) * sizeof *send);
    /* reduce-scatter: rank r receives every rank's copy of chunk r ... */
    int err = MPI_Alltoall(send, (int)chunk, MPI_FLOAT, recv, (int)chunk, MPI_FLOAT, d->comm);
    if (err != MPI_SUCCESS)
        return mpi_fail(err, "distributed step: MPI_Alltoall");
    /* ... and adds the copies in rank order */
    memcpy(send, recv, chunk * sizeof *send);
    for (size_t r = 1; r < P; r++)
        for (size_t j = 0; j < chunk; j++)
            send[j] += recv[r * chunk + j];
    err = MPI_Allgather(send, (int)chunk, MPI_FLOAT, recv, (int)chunk, MPI_FLOAT, d->comm);
    if (err != MPI_SUCCESS)
        return mpi_fail(err, "distributed step: MPI_Allgather");
    memcpy(buf, recv, n * sizeof *buf);
#endif
    return ICL_OK;
}
