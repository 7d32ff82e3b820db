/* Dense layer on cuBLAS: out = inp . w^T + bias, and its backward.
 *
 * cuBLAS is column-major; a row-major (R,K) matrix is the column-major
 * (K,R) matrix with leading dimension K, i.e. its transpose. So the row-major
 * product out (N,OC) = inp (N,C) . w (OC,C)^T is computed as the
 * column-major out^T (OC,N) = w^T^T . inp^T, i.e. op(A) = transpose of the
 * stored w (lda C), op(B) = the stored inp (ldb C), ldc OC. */
#include "common.cuh"

// out (N,OC) += bias (OC) broadcast over rows
__global__ void add_bias_kernel(float *out, const float *bias, size_t total, int OC) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x)
        out[i] += bias[i % OC];
}

bool icl_cuda_matmul_product(icl_cuda_ctx *ctx, float *out, const float *inp, const float *w, int N, int C, int OC,
                             const char *what) {
    const float one = 1.0f, zero = 0.0f;
    // column-major out^T (OC,N) = (w stored (C,OC))^T . (inp stored (C,N))
    return icl_cuda_blas_ok(
        ctx, cublasSgemm(ctx->blas, CUBLAS_OP_T, CUBLAS_OP_N, OC, N, C, &one, w, C, inp, C, &zero, out, OC), what);
}

void icl_cuda_matmul_forward(icl_backend *be, float *out, const float *inp, const float *w, const float *bias, int B,
                             int T, int C, int OC) {
    icl_cuda_ctx *ctx = icl_cuda_ctx_of(be);
    if (!icl_cuda_args(ctx, "matmul_forward", {B, T, C, OC}, {out, inp, w}))
        return;
    int N = B * T; /* one product over all rows: cuBLAS rounds each row alike for a fixed N */
    if (!icl_cuda_matmul_product(ctx, out, inp, w, N, C, OC, "matmul_forward (cublasSgemm)"))
        return;
    if (bias) {
        size_t total = (size_t)N * OC;
        add_bias_kernel<<<icl_cuda_grid(total), ICL_CUDA_BLOCK, 0, ctx->stream>>>(out, bias, total, OC);
        icl_cuda_launched(ctx, "matmul_forward (bias)");
    }
}

void icl_cuda_matmul_backward(icl_backend *be, float *dinp, float *dw, float *dbias, const float *dout,
                              const float *inp, const float *w, int N, int C, int OC) {
    icl_cuda_ctx *ctx = icl_cuda_ctx_of(be);
    if (!icl_cuda_args(ctx, "matmul_backward", {N, C, OC}, {dw, dout, inp, w}))
        return;
    const float one = 1.0f;
    // dinp (N,C) += dout (N,OC) . w (OC,C): column-major dinp^T (C,N) += (w stored (C,OC)) . (dout stored (OC,N))
    if (dinp && !icl_cuda_blas_ok(ctx, cublasSgemm(ctx->blas, CUBLAS_OP_N, CUBLAS_OP_N, C, N, OC, &one, w, C, dout,
                                                   OC, &one, dinp, C),
                                  "matmul_backward dinp (cublasSgemm)"))
        return;
    // dw (OC,C) += dout^T . inp: column-major dw^T (C,OC) += (inp stored (C,N)) . (dout stored (OC,N))^T
    if (!icl_cuda_blas_ok(ctx, cublasSgemm(ctx->blas, CUBLAS_OP_N, CUBLAS_OP_T, C, OC, N, &one, inp, C, dout, OC,
                                           &one, dw, C),
                          "matmul_backward dw (cublasSgemm)"))
        return;
    if (dbias)
        icl_cuda_add_column_sums(ctx, dbias, dout, N, OC, "matmul_backward (dbias)");
}
