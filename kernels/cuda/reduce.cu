/* Deterministic reductions: whole-tensor sums of squares (in double, kept on
 * the device), per-column sums used by the bias and layernorm gradients, and
 * the step's clip factor and not-finite flag. No
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

// *acc += sum of partials (count), one block
__global__ void sum_accumulate_kernel(double *acc, const double *partials, int count) {
    __shared__ double sh[ICL_CUDA_BLOCK];
    double part = 0.0;
    for (int i = threadIdx.x; i < count; i += blockDim.x)
        part += partials[i];
    double total = block_sum(sh, part);
    if (threadIdx.x == 0)
        *acc += total;
}

/* Two passes, both on the device: the host reads nothing back. */
void icl_cuda_sum_squares_accumulate(icl_backend *be, double *acc, const float *x, size_t n) {
    icl_cuda_ctx *ctx = icl_cuda_ctx_of(be);
    if (n == 0 || !icl_cuda_args(ctx, "sum_squares_accumulate", {}, {acc, x}))
        return;
    size_t want = (n + ICL_CUDA_BLOCK - 1) / ICL_CUDA_BLOCK;
    int blocks = want < (size_t)SUM_MAX_BLOCKS ? (int)want : SUM_MAX_BLOCKS;
    double *partials = (double *)icl_cuda_scratch(ctx, (size_t)blocks * sizeof(double), "sum_squares_accumulate");
    if (!partials)
        return;
    sum_squares_partials_kernel<<<blocks, ICL_CUDA_BLOCK, 0, ctx->stream>>>(partials, x, n);
    icl_cuda_launched(ctx, "sum_squares_accumulate");
    sum_accumulate_kernel<<<1, ICL_CUDA_BLOCK, 0, ctx->stream>>>(acc, partials, blocks);
    icl_cuda_launched(ctx, "sum_squares_accumulate (finish)");
}

// s->skip = 1 if a weighted loss among losses, weights (N) is not finite
__global__ void flag_nonfinite_losses_kernel(icl_step_scalars *s, const float *losses, const float *weights, int N) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < N; i += gridDim.x * blockDim.x)
        if (weights[i] != 0.0f && !isfinite(losses[i]))
            s->skip = 1; /* every writer stores the same value: no race on the result */
}

void icl_cuda_flag_nonfinite_losses(icl_backend *be, icl_step_scalars *s, const float *losses, const float *weights,
                                    int N) {
    icl_cuda_ctx *ctx = icl_cuda_ctx_of(be);
    if (!icl_cuda_args(ctx, "flag_nonfinite_losses", {N}, {s, losses, weights}))
        return;
    flag_nonfinite_losses_kernel<<<icl_cuda_grid((size_t)N), ICL_CUDA_BLOCK, 0, ctx->stream>>>(s, losses, weights, N);
    icl_cuda_launched(ctx, "flag_nonfinite_losses");
}

// one thread: the clip factor from s->grad_sq, with the CPU's arithmetic
__global__ void clip_scale_kernel(icl_step_scalars *s) {
    double norm = sqrt(s->grad_sq);
    if (!isfinite(norm))
        s->skip = 1;
    s->clip_scale = (s->grad_clip > 0.0f && norm > s->grad_clip) ? (float)(s->grad_clip / norm) : 1.0f;
}

void icl_cuda_clip_scale(icl_backend *be, icl_step_scalars *s) {
    icl_cuda_ctx *ctx = icl_cuda_ctx_of(be);
    if (!icl_cuda_args(ctx, "clip_scale", {}, {s}))
        return;
    clip_scale_kernel<<<1, 1, 0, ctx->stream>>>(s);
    icl_cuda_launched(ctx, "clip_scale");
}
