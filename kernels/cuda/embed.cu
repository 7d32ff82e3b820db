/* Token and position embeddings on the GPU: forward lookups, and backward
 * scatter-adds without atomics (each gradient element is summed by one
 * thread, over rows in increasing order, exactly like the CPU kernel). */
#include "common.cuh"

/* Rows of tokens staged in shared memory per step of the dwte scan. */
constexpr int EMBED_TOKEN_TILE = 128;

// out (N,C) = wte[tokens[n]] + wpe[n % T], N = B*T
__global__ void embed_forward_kernel(float *out, const int32_t *tokens, const float *wte, const float *wpe,
                                     size_t total, int T, int C) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        size_t n = i / C;
        int c = (int)(i % C);
        int t = (int)(n % T);
        out[i] = wte[(size_t)tokens[n] * C + c] + wpe[(size_t)t * C + c];
    }
}

// out (N,C) += wpe[n % T]
__global__ void position_add_forward_kernel(float *out, const float *wpe, size_t total, int T, int C) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        size_t n = i / C;
        int c = (int)(i % C);
        int t = (int)(n % T);
        out[i] += wpe[(size_t)t * C + c];
    }
}

/* dwpe (T,C) += sum over b of dout (B,T,C): one thread per (t,c), batch rows in order. */
__global__ void position_grad_kernel(float *dwpe, const float *dout, int B, int T, int C) {
    size_t total = (size_t)T * C;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        float acc = dwpe[i];
        for (int b = 0; b < B; b++)
            acc += dout[(size_t)b * total + i];
        dwpe[i] = acc;
    }
}

/* dwte (V,C) += rows of dout (N,C) grouped by token. Block x = row n, block
 * y = a tile of blockDim.x channels. Only the block of a token's first
 * occurrence does work: it walks rows n..N-1 in order and adds those with the
 * same token, so each dwte element has exactly one writer and a fixed order. */
__global__ void token_grad_kernel(float *dwte, const float *dout, const int32_t *tokens, int N, int C) {
    __shared__ int32_t tile[EMBED_TOKEN_TILE];
    int n = blockIdx.x;
    int c = blockIdx.y * blockDim.x + threadIdx.x;
    int32_t tok = tokens[n];

    /* Is there an earlier row with this token? Scan rows [0, n) cooperatively. */
    int seen = 0;
    for (int m0 = 0; m0 < n && !seen; m0 += blockDim.x) {
        int m = m0 + threadIdx.x;
        seen = __syncthreads_or(m < n && tokens[m] == tok);
    }
    if (seen)
        return; /* uniform across the block: __syncthreads_or gives every thread the same value */

    float acc = c < C ? dwte[(size_t)tok * C + c] : 0.0f;
    for (int m0 = n; m0 < N; m0 += EMBED_TOKEN_TILE) {
        int count = N - m0 < EMBED_TOKEN_TILE ? N - m0 : EMBED_TOKEN_TILE;
        for (int j = threadIdx.x; j < count; j += blockDim.x)
            tile[j] = tokens[m0 + j];
        __syncthreads();
        if (c < C)
            for (int j = 0; j < count; j++)
                if (tile[j] == tok)
                    acc += dout[(size_t)(m0 + j) * C + c];
        __syncthreads();
    }
    if (c < C)
        dwte[(size_t)tok * C + c] = acc;
}

/* Threads per token_grad block: a warp multiple covering C when C is small. */
static int token_grad_threads(int C) {
    int t = (C + ICL_CUDA_WARP - 1) / ICL_CUDA_WARP * ICL_CUDA_WARP;
    return t < 128 ? t : 128;
}

static void position_grad(icl_cuda_ctx *ctx, float *dwpe, const float *dout, int B, int T, int C,
                          const char *what) {
    position_grad_kernel<<<icl_cuda_grid((size_t)T * C), ICL_CUDA_BLOCK, 0, ctx->stream>>>(dwpe, dout, B, T, C);
    icl_cuda_launched(ctx, what);
}

void icl_cuda_embed_forward(icl_backend *be, float *out, const int32_t *tokens, const float *wte, const float *wpe,
                            int B, int T, int C) {
    icl_cuda_ctx *ctx = icl_cuda_ctx_of(be);
    if (!icl_cuda_args(ctx, "embed_forward", {B, T, C}, {out, tokens, wte, wpe}))
        return;
    size_t total = (size_t)B * T * C;
    embed_forward_kernel<<<icl_cuda_grid(total), ICL_CUDA_BLOCK, 0, ctx->stream>>>(out, tokens, wte, wpe, total, T,
                                                                                   C);
    icl_cuda_launched(ctx, "embed_forward");
}

void icl_cuda_position_add_forward(icl_backend *be, float *out, const float *wpe, int B, int T, int C) {
    icl_cuda_ctx *ctx = icl_cuda_ctx_of(be);
    if (!icl_cuda_args(ctx, "position_add_forward", {B, T, C}, {out, wpe}))
        return;
    size_t total = (size_t)B * T * C;
    position_add_forward_kernel<<<icl_cuda_grid(total), ICL_CUDA_BLOCK, 0, ctx->stream>>>(out, wpe, total, T, C);
    icl_cuda_launched(ctx, "position_add_forward");
}

void icl_cuda_embed_backward(icl_backend *be, float *dwte, float *dwpe, const float *dout, const int32_t *tokens,
                             int B, int T, int C) {
    icl_cuda_ctx *ctx = icl_cuda_ctx_of(be);
    if (!icl_cuda_args(ctx, "embed_backward", {B, T, C}, {dout, tokens}))
        return;
    if (dwte) {
        int threads = token_grad_threads(C);
        dim3 grid((unsigned)(B * T), (unsigned)((C + threads - 1) / threads));
        token_grad_kernel<<<grid, threads, 0, ctx->stream>>>(dwte, dout, tokens, B * T, C);
        icl_cuda_launched(ctx, "embed_backward (tokens)");
    }
    if (dwpe)
        position_grad(ctx, dwpe, dout, B, T, C, "embed_backward (positions)");
}

void icl_cuda_position_add_backward(icl_backend *be, float *dwpe, const float *dout, int B, int T, int C) {
    icl_cuda_ctx *ctx = icl_cuda_ctx_of(be);
    if (!icl_cuda_args(ctx, "position_add_backward", {B, T, C}, {dwpe, dout}))
        return;
    position_grad(ctx, dwpe, dout, B, T, C, "position_add_backward");
}
