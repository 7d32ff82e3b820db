/* Layer normalisation over the last dimension (eps 1e-5, biased variance):
 * one warp per row for the forward pass and the input gradient; the gain
 * and bias gradients are deterministic column sums (chunk partials in
 * double, combined in chunk order). */
#include "common.cuh"

constexpr float LN_EPS = 1e-5f;

/* One row by one warp: x (C) -> o (C), mean and rstd of the row. Shared by the
 * plain and the fused kernel, so both give the same bits. */
__device__ __forceinline__ void layernorm_row(float *o, float *mean, float *rstd, const float *x, const float *w,
                                              const float *b, int lane, int C) {
    float s = 0.0f;
    for (int c = lane; c < C; c += ICL_CUDA_WARP)
        s += x[c];
    float m = icl_warp_sum(s) / (float)C;
    float v = 0.0f;
    for (int c = lane; c < C; c += ICL_CUDA_WARP) {
        float d = x[c] - m;
        v += d * d;
    }
    float r = 1.0f / sqrtf(icl_warp_sum(v) / (float)C + LN_EPS);
    for (int c = lane; c < C; c += ICL_CUDA_WARP)
        o[c] = (x[c] - m) * r * w[c] + b[c];
    if (lane == 0) {
        *mean = m;
        *rstd = r;
    }
}

// out (N,C), mean (N), rstd (N) from inp (N,C), w (C), b (C); one warp per row
__global__ void layernorm_forward_kernel(float *out, float *mean, float *rstd, const float *inp, const float *w,
                                         const float *b, int N, int C) {
    int row = blockIdx.x * ICL_CUDA_WARPS_PER_BLOCK + threadIdx.x / ICL_CUDA_WARP;
    int lane = threadIdx.x % ICL_CUDA_WARP;
    if (row >= N)
        return; /* whole warp: rows are per warp */
    size_t at = (size_t)row * C;
    layernorm_row(out + at, mean + row, rstd + row, inp + at, w, b, lane, C);
}

// resid (N,C) = a + b, then out, mean, rstd as layernorm_forward_kernel on resid; one warp per row
__global__ void residual_layernorm_forward_kernel(float *resid, float *out, float *mean, float *rstd, const float *a,
                                                  const float *b, const float *w, const float *bias, int N, int C) {
    int row = blockIdx.x * ICL_CUDA_WARPS_PER_BLOCK + threadIdx.x / ICL_CUDA_WARP;
    int lane = threadIdx.x % ICL_CUDA_WARP;
    if (row >= N)
        return;
    size_t at = (size_t)row * C;
    /* each lane writes the columns it reads back below: no exchange between lanes */
    for (int c = lane; c < C; c += ICL_CUDA_WARP)
        resid[at + c] = a[at + c] + b[at + c];
    layernorm_row(out + at, mean + row, rstd + row, resid + at, w, bias, lane, C);
}

/* dinp (N,C) += rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dout * w; one warp per row */
__global__ void layernorm_input_grad_kernel(float *dinp, const float *dout, const float *inp, const float *w,
                                            const float *mean, const float *rstd, int N, int C) {
    int row = blockIdx.x * ICL_CUDA_WARPS_PER_BLOCK + threadIdx.x / ICL_CUDA_WARP;
    int lane = threadIdx.x % ICL_CUDA_WARP;
    if (row >= N)
        return;
    const float *x = inp + (size_t)row * C;
    const float *g = dout + (size_t)row * C;
    float m = mean[row], s = rstd[row];
    float sum_g = 0.0f, sum_gx = 0.0f;
    for (int c = lane; c < C; c += ICL_CUDA_WARP) {
        float gw = g[c] * w[c];
        sum_g += gw;
        sum_gx += gw * (x[c] - m) * s;
    }
    float mean_g = icl_warp_sum(sum_g) / (float)C;
    float mean_gx = icl_warp_sum(sum_gx) / (float)C;
    float *d = dinp + (size_t)row * C;
    for (int c = lane; c < C; c += ICL_CUDA_WARP)
        d[c] += s * (g[c] * w[c] - mean_g - (x[c] - m) * s * mean_gx);
}

/* Chunk partials (nchunks, C) of dw = sum dout * xhat and db = sum dout, laid
 * out like column_partials_kernel in reduce.cu (block (TILE, LANES)). */
__global__ void layernorm_param_partials_kernel(double *part_w, double *part_b, const float *dout, const float *inp,
                                                const float *mean, const float *rstd, int N, int C) {
    __shared__ double sh_w[ICL_CUDA_COLSUM_LANES][ICL_CUDA_COLSUM_TILE];
    __shared__ double sh_b[ICL_CUDA_COLSUM_LANES][ICL_CUDA_COLSUM_TILE];
    int tx = threadIdx.x, ty = threadIdx.y;
    int c = blockIdx.y * ICL_CUDA_COLSUM_TILE + tx;
    int chunk = blockIdx.x;
    int r0 = chunk * ICL_CUDA_COLSUM_ROWS;
    int r1 = N - r0 < ICL_CUDA_COLSUM_ROWS ? N : r0 + ICL_CUDA_COLSUM_ROWS;
    double acc_w = 0.0, acc_b = 0.0;
    if (c < C)
        for (int r = r0 + ty; r < r1; r += ICL_CUDA_COLSUM_LANES) {
            float g = dout[(size_t)r * C + c];
            float xhat = (inp[(size_t)r * C + c] - mean[r]) * rstd[r];
            acc_w += g * xhat;
            acc_b += g;
        }
    sh_w[ty][tx] = acc_w;
    sh_b[ty][tx] = acc_b;
    __syncthreads();
    if (ty == 0 && c < C) {
        double sw = 0.0, sb = 0.0;
        for (int j = 0; j < ICL_CUDA_COLSUM_LANES; j++) {
            sw += sh_w[j][tx];
            sb += sh_b[j][tx];
        }
        part_w[(size_t)chunk * C + c] = sw;
        part_b[(size_t)chunk * C + c] = sb;
    }
}

void icl_cuda_layernorm_forward(icl_backend *be, float *out, float *mean, float *rstd, const float *inp,
                                const float *w, const float *b, int N, int C) {
    icl_cuda_ctx *ctx = icl_cuda_ctx_of(be);
    if (!icl_cuda_args(ctx, "layernorm_forward", {N, C}, {out, mean, rstd, inp, w, b}))
        return;
    layernorm_forward_kernel<<<icl_cuda_row_grid(N), ICL_CUDA_BLOCK, 0, ctx->stream>>>(out, mean, rstd, inp, w, b,
                                                                                       N, C);
    icl_cuda_launched(ctx, "layernorm_forward");
}

void icl_cuda_residual_layernorm_forward(icl_backend *be, float *resid, float *out, float *mean, float *rstd,
                                         const float *a, const float *b, const float *w, const float *bias, int N,
                                         int C) {
    icl_cuda_ctx *ctx = icl_cuda_ctx_of(be);
    if (!icl_cuda_args(ctx, "residual_layernorm_forward", {N, C}, {resid, out, mean, rstd, a, b, w, bias}))
        return;
    residual_layernorm_forward_kernel<<<icl_cuda_row_grid(N), ICL_CUDA_BLOCK, 0, ctx->stream>>>(
        resid, out, mean, rstd, a, b, w, bias, N, C);
    icl_cuda_launched(ctx, "residual_layernorm_forward");
}

void icl_cuda_layernorm_backward(icl_backend *be, float *dinp, float *dw, float *db, const float *dout,
                                 const float *inp, const float *w, const float *mean, const float *rstd, int N,
                                 int C) {
    icl_cuda_ctx *ctx = icl_cuda_ctx_of(be);
    if (!icl_cuda_args(ctx, "layernorm_backward", {N, C}, {dinp, dw, db, dout, inp, w, mean, rstd}))
        return;
    layernorm_input_grad_kernel<<<icl_cuda_row_grid(N), ICL_CUDA_BLOCK, 0, ctx->stream>>>(dinp, dout, inp, w, mean,
                                                                                          rstd, N, C);
    icl_cuda_launched(ctx, "layernorm_backward (dinp)");

    int nchunks = icl_cuda_colsum_chunks(N);
    size_t per = (size_t)nchunks * C;
    double *part = (double *)icl_cuda_scratch(ctx, 2 * per * sizeof(double), "layernorm_backward (scratch)");
    if (!part)
        return;
    dim3 grid((unsigned)nchunks, (unsigned)((C + ICL_CUDA_COLSUM_TILE - 1) / ICL_CUDA_COLSUM_TILE));
    dim3 block(ICL_CUDA_COLSUM_TILE, ICL_CUDA_COLSUM_LANES);
    layernorm_param_partials_kernel<<<grid, block, 0, ctx->stream>>>(part, part + per, dout, inp, mean, rstd, N, C);
    icl_cuda_launched(ctx, "layernorm_backward (dw, db)");
    icl_cuda_finish_column_sums(ctx, dw, part, nchunks, C);
    icl_cuda_finish_column_sums(ctx, db, part + per, nchunks, C);
}
