/* Causal multi-head attention: the four products run as cuBLAS
 * strided-batched GEMMs (one call per head, batched over b), the causal
 * softmax and its backward as one warp per row.
 *
 * Layouts (row-major): qkv (B,T,3C) holds q, k, v at channel offsets 0, C,
 * 2C, head h at h*HS within each, so the (T,HS) block of one (b,h) has row
 * stride 3C and consecutive b are T*3C apart; scores/probs (B,NH,T,T) have
 * row stride T and consecutive b NH*T*T apart. In cuBLAS (column-major) terms
 * a stored row-major (R,K) block with row stride ld is the column-major
 * (K,R) matrix with leading dimension ld.
 *
 * The header's sums run over s <= t only. A full product equals that sum only
 * where the (T,T) operand is zero above the diagonal, so each (T,T) operand
 * is first copied into scratch with the upper triangle zeroed (probs and
 * dscores arriving from a hook or a caller may hold anything there), and the
 * (T,T) results are masked on the way out. */
#include <math.h>
#include "common.cuh"

/* Position (t,s) of element i of a (.., T, T) tensor is above the diagonal. */
__device__ __forceinline__ bool above_diagonal(size_t i, int T) {
    int s = (int)(i % T);
    int t = (int)((i / T) % T);
    return s > t;
}

// x (rows,T,T): zero the entries above the diagonal in place
__global__ void causal_zero_upper_kernel(float *x, size_t total, int T) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x)
        if (above_diagonal(i, T))
            x[i] = 0.0f;
}

// dst = src below and on the diagonal, 0 above
__global__ void causal_copy_kernel(float *dst, const float *src, size_t total, int T) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x)
        dst[i] = above_diagonal(i, T) ? 0.0f : src[i];
}

// dst += src below and on the diagonal; entries above are left alone
__global__ void causal_add_kernel(float *dst, const float *src, size_t total, int T) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x)
        if (!above_diagonal(i, T))
            dst[i] += src[i];
}

/* probs (rows,T) = softmax over s <= t of scores, 0 above; row = (b,h,t), one warp per row */
__global__ void causal_softmax_forward_kernel(float *probs, const float *scores, long long rows, int T) {
    long long row = (long long)blockIdx.x * ICL_CUDA_WARPS_PER_BLOCK + threadIdx.x / ICL_CUDA_WARP;
    int lane = threadIdx.x % ICL_CUDA_WARP;
    if (row >= rows)
        return; /* whole warp */
    int t = (int)(row % T);
    const float *x = scores + row * T;
    float *p = probs + row * T;
    float mx = -INFINITY;
    for (int s = lane; s <= t; s += ICL_CUDA_WARP)
        mx = fmaxf(mx, x[s]);
    mx = icl_warp_max(mx);
    float sum = 0.0f;
    for (int s = lane; s <= t; s += ICL_CUDA_WARP) {
        float e = expf(x[s] - mx);
        p[s] = e;
        sum += e;
    }
    float inv = 1.0f / icl_warp_sum(sum);
    /* each lane rescales the entries it wrote above (same s sequence) */
    for (int s = lane; s < T; s += ICL_CUDA_WARP)
        p[s] = s <= t ? p[s] * inv : 0.0f;
}

/* dscores (rows,T) += p * (dp - sum_{s<=t} p dp) for s <= t; one warp per row */
__global__ void causal_softmax_backward_kernel(float *dscores, const float *dprobs, const float *probs,
                                               long long rows, int T) {
    long long row = (long long)blockIdx.x * ICL_CUDA_WARPS_PER_BLOCK + threadIdx.x / ICL_CUDA_WARP;
    int lane = threadIdx.x % ICL_CUDA_WARP;
    if (row >= rows)
        return;
    int t = (int)(row % T);
    const float *p = probs + row * T;
    const float *dp = dprobs + row * T;
    float *ds = dscores + row * T;
    float dot = 0.0f;
    for (int s = lane; s <= t; s += ICL_CUDA_WARP)
        dot += p[s] * dp[s];
    dot = icl_warp_sum(dot);
    for (int s = lane; s <= t; s += ICL_CUDA_WARP)
        ds[s] += p[s] * (dp[s] - dot);
}

/* Shapes of one attention call. */
typedef struct {
    int B, T, C, NH, HS;
    long long qkv_b;  /* stride between batch rows in qkv: T*3C */
    long long out_b;  /* in (B,T,C) tensors: T*C */
    long long att_b;  /* in (B,NH,T,T) tensors: NH*T*T */
    size_t att_total; /* B*NH*T*T */
} att_dims;

static att_dims dims_of(int B, int T, int C, int NH) {
    att_dims d;
    d.B = B;
    d.T = T;
    d.C = C;
    d.NH = NH;
    d.HS = C / NH;
    d.qkv_b = (long long)T * 3 * C;
    d.out_b = (long long)T * C;
    d.att_b = (long long)NH * T * T;
    d.att_total = (size_t)B * NH * T * T;
    return d;
}

/* Validate the attention arguments; false means launch nothing. */
static bool att_args(icl_cuda_ctx *ctx, const char *what, int B, int T, int C, int NH,
                     std::initializer_list<const void *> required) {
    if (!icl_cuda_args(ctx, what, {B, T, C, NH}, required))
        return false;
    if (C % NH != 0) {
        icl_cuda_record(ctx, what, "C is not a multiple of NH");
        return false;
    }
    return true;
}

/* One strided-batched GEMM over b (batch count B) for one head. */
static bool gemm_b(icl_cuda_ctx *ctx, const att_dims &d, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                   int k, float alpha, const float *A, int lda, long long sa, const float *Bm, int ldb, long long sb,
                   float beta, float *Cm, int ldc, long long sc, const char *what) {
    return icl_cuda_blas_ok(ctx,
                            cublasSgemmStridedBatched(ctx->blas, ta, tb, m, n, k, &alpha, A, lda, sa, Bm, ldb, sb,
                                                      &beta, Cm, ldc, sc, d.B),
                            what);
}

static void causal_copy(icl_cuda_ctx *ctx, float *dst, const float *src, const att_dims &d, const char *what) {
    causal_copy_kernel<<<icl_cuda_grid(d.att_total), ICL_CUDA_BLOCK, 0, ctx->stream>>>(dst, src, d.att_total, d.T);
    icl_cuda_launched(ctx, what);
}

void icl_cuda_attention_scores_forward(icl_backend *be, float *scores, const float *qkv, int B, int T, int C,
                                       int NH) {
    icl_cuda_ctx *ctx = icl_cuda_ctx_of(be);
    const char *what = "attention_scores_forward";
    if (!att_args(ctx, what, B, T, C, NH, {scores, qkv}))
        return;
    att_dims d = dims_of(B, T, C, NH);
    float scale = 1.0f / sqrtf((float)d.HS);
    for (int h = 0; h < NH; h++) {
        const float *q = qkv + (size_t)h * d.HS;
        const float *k = qkv + C + (size_t)h * d.HS;
        // scores^T (s,t) = sum_i k[s,i] q[t,i]: op(A) = (k stored (HS,T))^T, op(B) = q stored (HS,T)
        if (!gemm_b(ctx, d, CUBLAS_OP_T, CUBLAS_OP_N, T, T, d.HS, scale, k, 3 * C, d.qkv_b, q, 3 * C, d.qkv_b, 0.0f,
                    scores + (size_t)h * T * T, T, d.att_b, what))
            return;
    }
    causal_zero_upper_kernel<<<icl_cuda_grid(d.att_total), ICL_CUDA_BLOCK, 0, ctx->stream>>>(scores, d.att_total, T);
    icl_cuda_launched(ctx, what);
}

void icl_cuda_attention_softmax_forward(icl_backend *be, float *probs, const float *scores, int B, int NH, int T) {
    icl_cuda_ctx *ctx = icl_cuda_ctx_of(be);
    if (!icl_cuda_args(ctx, "attention_softmax_forward", {B, NH, T}, {probs, scores}))
        return;
    long long rows = (long long)B * NH * T;
    causal_softmax_forward_kernel<<<icl_cuda_row_grid(rows), ICL_CUDA_BLOCK, 0, ctx->stream>>>(probs, scores, rows,
                                                                                               T);
    icl_cuda_launched(ctx, "attention_softmax_forward");
}

void icl_cuda_attention_values_forward(icl_backend *be, float *out, const float *probs, const float *qkv, int B,
                                       int T, int C, int NH) {
    icl_cuda_ctx *ctx = icl_cuda_ctx_of(be);
    const char *what = "attention_values_forward";
    if (!att_args(ctx, what, B, T, C, NH, {out, probs, qkv}))
        return;
    att_dims d = dims_of(B, T, C, NH);
    float *pm = (float *)icl_cuda_scratch(ctx, d.att_total * sizeof(float), what);
    if (!pm)
        return;
    causal_copy(ctx, pm, probs, d, what);
    for (int h = 0; h < NH; h++) {
        const float *v = qkv + 2 * (size_t)C + (size_t)h * d.HS;
        // out^T (i,t) = sum_s v[s,i] p[t,s]: op(A) = v stored (HS,T), op(B) = p stored (T,T) as (s,t)
        if (!gemm_b(ctx, d, CUBLAS_OP_N, CUBLAS_OP_N, d.HS, T, T, 1.0f, v, 3 * C, d.qkv_b, pm + (size_t)h * T * T, T,
                    d.att_b, 0.0f, out + (size_t)h * d.HS, C, d.out_b, what))
            return;
    }
}

void icl_cuda_attention_values_backward(icl_backend *be, float *dprobs, float *dqkv, const float *dout,
                                        const float *probs, const float *qkv, int B, int T, int C, int NH) {
    icl_cuda_ctx *ctx = icl_cuda_ctx_of(be);
    const char *what = "attention_values_backward";
    if (!att_args(ctx, what, B, T, C, NH, {dprobs, dqkv, dout, probs, qkv}))
        return;
    att_dims d = dims_of(B, T, C, NH);
    float *pm = (float *)icl_cuda_scratch(ctx, 2 * d.att_total * sizeof(float), what);
    if (!pm)
        return;
    float *dp = pm + d.att_total; /* full dprobs product before masking */
    causal_copy(ctx, pm, probs, d, what);
    for (int h = 0; h < NH; h++) {
        const float *v = qkv + 2 * (size_t)C + (size_t)h * d.HS;
        const float *dout_h = dout + (size_t)h * d.HS;
        // dprobs^T (s,t) = sum_i v[s,i] dout[t,i]: op(A) = (v stored (HS,T))^T, op(B) = dout stored (HS,T)
        if (!gemm_b(ctx, d, CUBLAS_OP_T, CUBLAS_OP_N, T, T, d.HS, 1.0f, v, 3 * C, d.qkv_b, dout_h, C, d.out_b, 0.0f,
                    dp + (size_t)h * T * T, T, d.att_b, what))
            return;
        // dv^T (i,s) += sum_t dout[t,i] p[t,s]: op(A) = dout stored (HS,T), op(B) = (p stored (T,T) as (s,t))^T
        if (!gemm_b(ctx, d, CUBLAS_OP_N, CUBLAS_OP_T, d.HS, T, T, 1.0f, dout_h, C, d.out_b, pm + (size_t)h * T * T, T,
                    d.att_b, 1.0f, dqkv + 2 * (size_t)C + (size_t)h * d.HS, 3 * C, d.qkv_b, what))
            return;
    }
    causal_add_kernel<<<icl_cuda_grid(d.att_total), ICL_CUDA_BLOCK, 0, ctx->stream>>>(dprobs, dp, d.att_total, T);
    icl_cuda_launched(ctx, what);
}

void icl_cuda_attention_softmax_backward(icl_backend *be, float *dscores, const float *dprobs, const float *probs,
                                         int B, int NH, int T) {
    icl_cuda_ctx *ctx = icl_cuda_ctx_of(be);
    if (!icl_cuda_args(ctx, "attention_softmax_backward", {B, NH, T}, {dscores, dprobs, probs}))
        return;
    long long rows = (long long)B * NH * T;
    causal_softmax_backward_kernel<<<icl_cuda_row_grid(rows), ICL_CUDA_BLOCK, 0, ctx->stream>>>(dscores, dprobs,
                                                                                                probs, rows, T);
    icl_cuda_launched(ctx, "attention_softmax_backward");
}

void icl_cuda_attention_scores_backward(icl_backend *be, float *dqkv, const float *dscores, const float *qkv, int B,
                                        int T, int C, int NH) {
    icl_cuda_ctx *ctx = icl_cuda_ctx_of(be);
    const char *what = "attention_scores_backward";
    if (!att_args(ctx, what, B, T, C, NH, {dqkv, dscores, qkv}))
        return;
    att_dims d = dims_of(B, T, C, NH);
    float *dsm = (float *)icl_cuda_scratch(ctx, d.att_total * sizeof(float), what);
    if (!dsm)
        return;
    causal_copy(ctx, dsm, dscores, d, what);
    float scale = 1.0f / sqrtf((float)d.HS);
    for (int h = 0; h < NH; h++) {
        size_t off = (size_t)h * d.HS;
        const float *ds = dsm + (size_t)h * T * T;
        // dq^T (i,t) += scale * sum_s k[s,i] ds[t,s]: op(A) = k stored (HS,T), op(B) = ds stored (T,T) as (s,t)
        if (!gemm_b(ctx, d, CUBLAS_OP_N, CUBLAS_OP_N, d.HS, T, T, scale, qkv + C + off, 3 * C, d.qkv_b, ds, T,
                    d.att_b, 1.0f, dqkv + off, 3 * C, d.qkv_b, what))
            return;
        // dk^T (i,s) += scale * sum_t q[t,i] ds[t,s]: op(A) = q stored (HS,T), op(B) = (ds stored as (s,t))^T
        if (!gemm_b(ctx, d, CUBLAS_OP_N, CUBLAS_OP_T, d.HS, T, T, scale, qkv + off, 3 * C, d.qkv_b, ds, T, d.att_b,
                    1.0f, dqkv + C + off, 3 * C, d.qkv_b, what))
            return;
    }
}
