/* Deterministic reductions: whole-tensor sums (in double, returned to the
 * host) and per-column sums used by the bias and layernorm gradients. No
 * float atomics: partial results are combined in an order fixed by the
 * sizes alone, so the same inputs give the same bits on every run. */
#include <math.h>
#include "common.cuh"

/* Most blocks in the first pass of sum / sum_squares. */
constexpr int SUM_MAX_BLOCKS = 1024;

/* partials (nchunks, C): partials[k,c] = sum of x[r,c] over the rows r of chunk k.
 * Block (TILE, LANES) covers TILE columns; lane ty takes rows ty, ty+LANES, ... */
__global__ void column_partials_kernel(double *partials, const float *x, int N, int C) {
    __shared__ double part[ICL_CUDA_COLSUM_LANES][ICL_CUDA_COLSUM_TILE];
    int tx = threadIdx.x, ty = threadIdx.y;
    int c = blockIdx.y * ICL_CUDA_COLSUM_TILE + tx;
    int chunk = blockIdx.x;
    int r0 = chunk * ICL_CUDA_COLSUM_ROWS;
    int r1 = N - r0 < ICL_CUDA_COLSUM_ROWS ? N : r0 + ICL_CUDA_COLSUM_ROWS;
    double acc = 0.0;
    if (c < C)
        for (int r = r0 + ty; r < r1; r += ICL_CUDA_COLSUM_LANES)
            acc += x[(size_t)r * C + c];
    part[ty][tx] = acc;
    __syncthreads();
    if (ty == 0 && c < C) {
        double s = 0.0;
        for (int j = 0; j < ICL_CUDA_COLSUM_LANES; j++)
            s += part[j][tx];
        partials[(size_t)chunk * C + c] = s;
    }
}

// out (C) += sum over k of partials (nchunks, C), k in order
__global__ void finish_column_sums_kernel(float *out, const double *partials, int nchunks, int C) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C)
        return;
    double s = 0.0;
    for (int k = 0; k < nchunks; k++)
        s += partials[(size_t)k * C + c];
    out[c] = (float)((double)out[c] + s);
}

/* Tree-sum a block's values in shared memory (blockDim.x a power of two); thread 0 gets the total. */
__device__ double block_sum(double *sh, double v) {
    sh[threadIdx.x] = v;
    __syncthreads();
    for (unsigned s = blockDim.x / 2; s > 0; s /= 2) {
        if (threadIdx.x < s)
            sh[threadIdx.x] += sh[threadIdx.x + s];
        __syncthreads();
    }
    return sh[0];
}

// partials (gridDim.x): per-block sums of x^2 over x (n)
__global__ void sum_squares_partials_kernel(double *partials, const float *x, size_t n) {
    __shared__ double sh[ICL_CUDA_BLOCK];
    double acc = 0.0;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        double v = x[i];
        acc += v * v;
    }
    double total = block_sum(sh, acc);
    if (threadIdx.x == 0)
        partials[blockIdx.x] = total;
}

// *result = sum of partials (count), one block
__global__ void sum_finish_kernel(double *result, const double *partials, int count) {
    __shared__ double sh[ICL_CUDA_BLOCK];
    double acc = 0.0;
    for (int i = threadIdx.x; i < count; i += blockDim.x)
        acc += partials[i];
    double total = block_sum(sh, acc);
    if (threadIdx.x == 0)
        *result = total;
}

void icl_cuda_finish_column_sums(icl_cuda_ctx *ctx, float *out, const double *partials, int nchunks, int C) {
    unsigned blocks = (unsigned)((C + ICL_CUDA_BLOCK - 1) / ICL_CUDA_BLOCK);
    finish_column_sums_kernel<<<blocks, ICL_CUDA_BLOCK, 0, ctx->stream>>>(out, partials, nchunks, C);
    icl_cuda_launched(ctx, "column sums (finish)");
}

void icl_cuda_add_column_sums(icl_cuda_ctx *ctx, float *out, const float *x, int N, int C, const char *what) {
    int nchunks = icl_cuda_colsum_chunks(N);
    double *partials = (double *)icl_cuda_scratch(ctx, (size_t)nchunks * C * sizeof(double), what);
    if (!partials)
        return;
    dim3 grid((unsigned)nchunks, (unsigned)((C + ICL_CUDA_COLSUM_TILE - 1) / ICL_CUDA_COLSUM_TILE));
    dim3 block(ICL_CUDA_COLSUM_TILE, ICL_CUDA_COLSUM_LANES);
    column_partials_kernel<<<grid, block, 0, ctx->stream>>>(partials, x, N, C);
    icl_cuda_launched(ctx, what);
    icl_cuda_finish_column_sums(ctx, out, partials, nchunks, C);
}

/* Two passes on the device, then the double comes back to the host (a sync). */
static double reduce_to_host(icl_backend *be, const float *x, size_t n, const char *what) {
    icl_cuda_ctx *ctx = icl_cuda_ctx_of(be);
    if (n == 0)
        return 0.0;
    if (!x) {
        icl_cuda_record(ctx, what, "x is NULL");
        return NAN;
    }
    size_t want = (n + ICL_CUDA_BLOCK - 1) / ICL_CUDA_BLOCK;
    int blocks = want < (size_t)SUM_MAX_BLOCKS ? (int)want : SUM_MAX_BLOCKS;
    double *partials = (double *)icl_cuda_scratch(ctx, (size_t)blocks * sizeof(double), what);
    if (!partials)
        return NAN;
    sum_squares_partials_kernel<<<blocks, ICL_CUDA_BLOCK, 0, ctx->stream>>>(partials, x, n);
    icl_cuda_launched(ctx, what);
    sum_finish_kernel<<<1, ICL_CUDA_BLOCK, 0, ctx->stream>>>(ctx->d_scalar, partials, blocks);
    icl_cuda_launched(ctx, what);
    if (!icl_cuda_ok(ctx, cudaMemcpyAsync(ctx->h_scalar, ctx->d_scalar, sizeof(double), cudaMemcpyDeviceToHost,
                                          ctx->stream),
                     what) ||
        !icl_cuda_ok(ctx, cudaStreamSynchronize(ctx->stream), what))
        return NAN;
    return *ctx->h_scalar;
}

double icl_cuda_sum_squares(icl_backend *be, const float *x, size_t n) {
    return reduce_to_host(be, x, n, "sum_squares");
}
