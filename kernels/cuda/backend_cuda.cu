/* The CUDA backend: context (stream, cuBLAS handle, workspaces, first
 * error), memory operations, the ops table wiring the kernels of the
 * other kernels/cuda files, and the entry through which libicl loads them
 * all as a plugin (libicl-cuda.so). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common.cuh"

/* cuBLAS workspace: the size NVIDIA recommends for Hopper (enough for older GPUs too). */
constexpr size_t BLAS_WORKSPACE_BYTES = 32u << 20;

void icl_cuda_record(icl_cuda_ctx *ctx, const char *what, const char *detail) {
    if (ctx->failed)
        return;
    ctx->failed = 1;
    snprintf(ctx->error, sizeof ctx->error, "%s: %s", what, detail);
}

bool icl_cuda_ok(icl_cuda_ctx *ctx, cudaError_t err, const char *what) {
    if (err == cudaSuccess)
        return true;
    icl_cuda_record(ctx, what, cudaGetErrorString(err));
    return false;
}

bool icl_cuda_blas_ok(icl_cuda_ctx *ctx, cublasStatus_t st, const char *what) {
    if (st == CUBLAS_STATUS_SUCCESS)
        return true;
    icl_cuda_record(ctx, what, cublasGetStatusString(st));
    return false;
}

bool icl_cuda_args(icl_cuda_ctx *ctx, const char *what, std::initializer_list<long long> sizes,
                   std::initializer_list<const void *> required) {
    bool empty = false;
    for (long long s : sizes) {
        if (s < 0) {
            icl_cuda_record(ctx, what, "negative size");
            return false;
        }
        empty = empty || s == 0;
    }
    if (empty)
        return false;
    for (const void *p : required)
        if (!p) {
            icl_cuda_record(ctx, what, "required pointer is NULL");
            return false;
        }
    return true;
}

void *icl_cuda_scratch(icl_cuda_ctx *ctx, size_t bytes, const char *what) {
    if (bytes <= ctx->scratch_bytes)
        return ctx->scratch;
    if (ctx->capturing) {
        /* a recorded graph would keep the old pointer; graph_end reports this */
        icl_cuda_record(ctx, what, "scratch would grow during a graph capture");
        return NULL;
    }
    if (ctx->scratch) {
        /* queued kernels may still read the old buffer: wait for them before freeing it */
        icl_cuda_ok(ctx, cudaStreamSynchronize(ctx->stream), what);
        cudaFree(ctx->scratch);
    }
    ctx->scratch = NULL;
    ctx->scratch_bytes = 0;
    if (!icl_cuda_ok(ctx, cudaMalloc(&ctx->scratch, bytes), what)) {
        ctx->scratch = NULL;
        return NULL;
    }
    ctx->scratch_bytes = bytes;
    return ctx->scratch;
}

/* Report and clear the pending failure, if any. */
static icl_status take_error(icl_cuda_ctx *ctx) {
    if (!ctx->failed)
        return ICL_OK;
    ctx->failed = 0;
    return icl_fail(ICL_ERR_BACKEND, "CUDA backend: %s", ctx->error);
}

/* A memory operation: record a failed call and report it at once. */
static icl_status mem_status(icl_cuda_ctx *ctx, cudaError_t err, const char *what) {
    icl_cuda_ok(ctx, err, what);
    return take_error(ctx);
}

static icl_status cuda_alloc(icl_backend *be, void **ptr, size_t bytes) {
    if (!ptr)
        return icl_fail(ICL_ERR_INVALID_ARG, "cuda alloc: ptr is NULL");
    *ptr = NULL;
    icl_cuda_ctx *ctx = icl_cuda_ctx_of(be);
    /* at least one byte, so a zero-byte request still gets a distinct freeable block (as on the CPU) */
    cudaError_t err = cudaMalloc(ptr, bytes ? bytes : 1);
    if (err != cudaSuccess) {
        *ptr = NULL;
        cudaGetLastError(); /* an out-of-memory error is not sticky: clear it */
        return icl_fail(err == cudaErrorMemoryAllocation ? ICL_ERR_NOMEM : ICL_ERR_BACKEND,
                        "cuda alloc of %zu bytes failed: %s", bytes, cudaGetErrorString(err));
    }
    err = cudaMemsetAsync(*ptr, 0, bytes ? bytes : 1, ctx->stream);
    if (err != cudaSuccess) {
        cudaFree(*ptr);
        *ptr = NULL;
        return mem_status(ctx, err, "cuda alloc (zero fill)");
    }
    return ICL_OK;
}

static void cuda_release(icl_backend *be, void *ptr) {
    if (!ptr)
        return;
    icl_cuda_ctx *ctx = icl_cuda_ctx_of(be);
    /* queued kernels may still use ptr; a failure here is reported by the next sync */
    icl_cuda_ok(ctx, cudaStreamSynchronize(ctx->stream), "cuda release");
    cudaFree(ptr);
}

static icl_status cuda_zero(icl_backend *be, void *ptr, size_t bytes) {
    if (bytes == 0)
        return ICL_OK;
    if (!ptr)
        return icl_fail(ICL_ERR_INVALID_ARG, "cuda zero: ptr is NULL");
    icl_cuda_ctx *ctx = icl_cuda_ctx_of(be);
    return mem_status(ctx, cudaMemsetAsync(ptr, 0, bytes, ctx->stream), "cuda zero");
}

/* The host buffer may be reused as soon as this returns, so wait for the copy. */
static icl_status cuda_to_device(icl_backend *be, void *dst, const void *host_src, size_t bytes) {
    if (bytes == 0)
        return ICL_OK;
    if (!dst || !host_src)
        return icl_fail(ICL_ERR_INVALID_ARG, "cuda to_device: NULL pointer");
    icl_cuda_ctx *ctx = icl_cuda_ctx_of(be);
    if (!icl_cuda_ok(ctx, cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, ctx->stream),
                     "cuda to_device"))
        return take_error(ctx);
    return mem_status(ctx, cudaStreamSynchronize(ctx->stream), "cuda to_device (sync)");
}

static icl_status cuda_to_host(icl_backend *be, void *host_dst, const void *src, size_t bytes) {
    if (bytes == 0)
        return ICL_OK;
    if (!host_dst || !src)
        return icl_fail(ICL_ERR_INVALID_ARG, "cuda to_host: NULL pointer");
    icl_cuda_ctx *ctx = icl_cuda_ctx_of(be);
    if (!icl_cuda_ok(ctx, cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, ctx->stream),
                     "cuda to_host"))
        return take_error(ctx);
    return mem_status(ctx, cudaStreamSynchronize(ctx->stream), "cuda to_host (sync)");
}

/* Overlapping ranges are allowed (memmove semantics, as on the CPU): they go through scratch. */
static icl_status cuda_copy(icl_backend *be, void *dst, const void *src, size_t bytes) {
    if (bytes == 0 || dst == src)
        return ICL_OK;
    if (!dst || !src)
        return icl_fail(ICL_ERR_INVALID_ARG, "cuda copy: NULL pointer");
    icl_cuda_ctx *ctx = icl_cuda_ctx_of(be);
    uintptr_t d = (uintptr_t)dst, s = (uintptr_t)src;
    if (d < s + bytes && s < d + bytes) {
        void *tmp = icl_cuda_scratch(ctx, bytes, "cuda copy (overlap scratch)");
        if (!tmp)
            return take_error(ctx);
        if (!icl_cuda_ok(ctx, cudaMemcpyAsync(tmp, src, bytes, cudaMemcpyDeviceToDevice, ctx->stream), "cuda copy"))
            return take_error(ctx);
        src = tmp;
    }
    return mem_status(ctx, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, ctx->stream), "cuda copy");
}

static icl_status cuda_alloc_staging(icl_backend *be, void **ptr, size_t bytes) {
    (void)be;
    if (!ptr)
        return icl_fail(ICL_ERR_INVALID_ARG, "cuda alloc_staging: ptr is NULL");
    *ptr = NULL;
    /* pinned, so queued copies need not wait and can be recorded in a graph */
    cudaError_t err = cudaMallocHost(ptr, bytes ? bytes : 1);
    if (err != cudaSuccess) {
        *ptr = NULL;
        cudaGetLastError();
        return icl_fail(err == cudaErrorMemoryAllocation ? ICL_ERR_NOMEM : ICL_ERR_BACKEND,
                        "cuda alloc_staging of %zu pinned bytes failed: %s", bytes, cudaGetErrorString(err));
    }
    memset(*ptr, 0, bytes ? bytes : 1);
    return ICL_OK;
}

static void cuda_release_staging(icl_backend *be, void *ptr) {
    if (!ptr)
        return;
    icl_cuda_ctx *ctx = icl_cuda_ctx_of(be);
    icl_cuda_ok(ctx, cudaStreamSynchronize(ctx->stream), "cuda release_staging");
    cudaFreeHost(ptr);
}

static void queue_copy(icl_backend *be, void *dst, const void *src, size_t bytes, cudaMemcpyKind kind,
                       const char *what) {
    icl_cuda_ctx *ctx = icl_cuda_ctx_of(be);
    if (!icl_cuda_args(ctx, what, {(long long)bytes}, {dst, src}))
        return;
    icl_cuda_ok(ctx, cudaMemcpyAsync(dst, src, bytes, kind, ctx->stream), what);
}

static void cuda_upload(icl_backend *be, void *dst, const void *staging_src, size_t bytes) {
    queue_copy(be, dst, staging_src, bytes, cudaMemcpyHostToDevice, "cuda upload");
}

static void cuda_download(icl_backend *be, void *staging_dst, const void *src, size_t bytes) {
    queue_copy(be, staging_dst, src, bytes, cudaMemcpyDeviceToHost, "cuda download");
}

/* ThreadLocal mode: another thread's unrelated CUDA calls do not break the capture. */
static icl_status cuda_graph_begin(icl_backend *be) {
    icl_cuda_ctx *ctx = icl_cuda_ctx_of(be);
    if (ctx->failed)
        return take_error(ctx);
    cudaError_t err = cudaStreamBeginCapture(ctx->stream, cudaStreamCaptureModeThreadLocal);
    if (err != cudaSuccess) {
        cudaGetLastError();
        return icl_fail(ICL_ERR_BACKEND, "CUDA graph capture could not begin: %s", cudaGetErrorString(err));
    }
    ctx->capturing = 1;
    return ICL_OK;
}

static icl_status cuda_graph_end(icl_backend *be, void **out) {
    icl_cuda_ctx *ctx = icl_cuda_ctx_of(be);
    *out = NULL;
    ctx->capturing = 0;
    cudaGraph_t graph = NULL;
    cudaError_t err = cudaStreamEndCapture(ctx->stream, &graph);
    cudaGraphExec_t exec = NULL;
    if (err == cudaSuccess && !ctx->failed)
        err = cudaGraphInstantiate(&exec, graph, 0);
    if (graph)
        cudaGraphDestroy(graph);
    if (ctx->failed || err != cudaSuccess) {
        cudaGetLastError();
        if (exec)
            cudaGraphExecDestroy(exec);
        if (!ctx->failed)
            icl_cuda_record(ctx, "graph capture", cudaGetErrorString(err));
        return take_error(ctx);
    }
    *out = exec;
    return ICL_OK;
}

static void cuda_graph_launch(icl_backend *be, void *graph) {
    icl_cuda_ctx *ctx = icl_cuda_ctx_of(be);
    if (!graph) {
        icl_cuda_record(ctx, "graph_launch", "graph is NULL");
        return;
    }
    icl_cuda_ok(ctx, cudaGraphLaunch((cudaGraphExec_t)graph, ctx->stream), "graph_launch");
}

static void cuda_graph_free(icl_backend *be, void *graph) {
    if (!graph)
        return;
    icl_cuda_ctx *ctx = icl_cuda_ctx_of(be);
    icl_cuda_ok(ctx, cudaStreamSynchronize(ctx->stream), "graph_free");
    cudaGraphExecDestroy((cudaGraphExec_t)graph);
}

static icl_status cuda_sync(icl_backend *be) {
    icl_cuda_ctx *ctx = icl_cuda_ctx_of(be);
    icl_cuda_ok(ctx, cudaStreamSynchronize(ctx->stream), "cuda sync");
    icl_cuda_ok(ctx, cudaGetLastError(), "cuda sync");
    return take_error(ctx);
}

/* Free whatever parts of the context exist (also used on a failed create). */
static void free_ctx(icl_cuda_ctx *ctx) {
    if (ctx->stream)
        cudaStreamSynchronize(ctx->stream);
    if (ctx->blas)
        cublasDestroy(ctx->blas);
    if (ctx->blas_workspace)
        cudaFree(ctx->blas_workspace);
    if (ctx->scratch)
        cudaFree(ctx->scratch);
    if (ctx->stream)
        cudaStreamDestroy(ctx->stream);
    free(ctx);
}

static void cuda_destroy(icl_backend *be) {
    if (!be)
        return;
    if (be->impl)
        free_ctx(icl_cuda_ctx_of(be));
    free(be);
}

static icl_backend_ops make_ops(void) {
    icl_backend_ops o;
    memset(&o, 0, sizeof o);
    o.name = "cuda";
    o.destroy = cuda_destroy;
    o.alloc = cuda_alloc;
    o.release = cuda_release;
    o.zero = cuda_zero;
    o.to_device = cuda_to_device;
    o.to_host = cuda_to_host;
    o.copy = cuda_copy;
    o.sync = cuda_sync;
    o.alloc_staging = cuda_alloc_staging;
    o.release_staging = cuda_release_staging;
    o.upload = cuda_upload;
    o.download = cuda_download;
    o.graph_begin = cuda_graph_begin;
    o.graph_end = cuda_graph_end;
    o.graph_launch = cuda_graph_launch;
    o.graph_free = cuda_graph_free;
    o.embed_forward = icl_cuda_embed_forward;
    o.position_add_forward = icl_cuda_position_add_forward;
    o.matmul_forward = icl_cuda_matmul_forward;
    o.layernorm_forward = icl_cuda_layernorm_forward;
    o.attention_scores_forward = icl_cuda_attention_scores_forward;
    o.attention_softmax_forward = icl_cuda_attention_softmax_forward;
    o.attention_values_forward = icl_cuda_attention_values_forward;
    o.gelu_forward = icl_cuda_gelu_forward;
    o.residual_forward = icl_cuda_residual_forward;
    o.crossentropy_forward = icl_cuda_crossentropy_forward;
    o.mse_forward = icl_cuda_mse_forward;
    o.residual_layernorm_forward = icl_cuda_residual_layernorm_forward;
    o.matmul_gelu_forward = icl_cuda_matmul_gelu_forward;
    o.embed_backward = icl_cuda_embed_backward;
    o.position_add_backward = icl_cuda_position_add_backward;
    o.matmul_backward = icl_cuda_matmul_backward;
    o.layernorm_backward = icl_cuda_layernorm_backward;
    o.attention_values_backward = icl_cuda_attention_values_backward;
    o.attention_softmax_backward = icl_cuda_attention_softmax_backward;
    o.attention_scores_backward = icl_cuda_attention_scores_backward;
    o.gelu_backward = icl_cuda_gelu_backward;
    o.crossentropy_backward = icl_cuda_crossentropy_backward;
    o.mse_backward = icl_cuda_mse_backward;
    o.sum_squares_accumulate = icl_cuda_sum_squares_accumulate;
    o.flag_nonfinite_losses = icl_cuda_flag_nonfinite_losses;
    o.clip_scale = icl_cuda_clip_scale;
    o.adamw_update = icl_cuda_adamw_update;
    return o;
}

/* Create the stream and the cuBLAS handle (FP32 math, no atomics, fixed
 * workspace). */
static icl_status init_ctx(icl_cuda_ctx *ctx) {
    const char *step = NULL;
    cudaError_t err = cudaSuccess;
    cublasStatus_t st = CUBLAS_STATUS_SUCCESS;
    if ((err = cudaStreamCreateWithFlags(&ctx->stream, cudaStreamNonBlocking)) != cudaSuccess)
        step = "cudaStreamCreate";
    else if ((err = cudaMalloc(&ctx->blas_workspace, BLAS_WORKSPACE_BYTES)) != cudaSuccess)
        step = "cudaMalloc (cuBLAS workspace)";
    if (step)
        return icl_fail(ICL_ERR_BACKEND, "CUDA backend: %s failed: %s", step, cudaGetErrorString(err));

    if ((st = cublasCreate(&ctx->blas)) != CUBLAS_STATUS_SUCCESS) {
        ctx->blas = NULL;
        step = "cublasCreate";
    } else if ((st = cublasSetStream(ctx->blas, ctx->stream)) != CUBLAS_STATUS_SUCCESS)
        step = "cublasSetStream";
    else if ((st = cublasSetWorkspace(ctx->blas, ctx->blas_workspace, BLAS_WORKSPACE_BYTES)) != CUBLAS_STATUS_SUCCESS)
        step = "cublasSetWorkspace";
    /* Plain FP32 products (no TF32) so results track the CPU backend. */
    else if ((st = cublasSetMathMode(ctx->blas, CUBLAS_DEFAULT_MATH)) != CUBLAS_STATUS_SUCCESS)
        step = "cublasSetMathMode";
    else if ((st = cublasSetAtomicsMode(ctx->blas, CUBLAS_ATOMICS_NOT_ALLOWED)) != CUBLAS_STATUS_SUCCESS)
        step = "cublasSetAtomicsMode";
    if (step)
        return icl_fail(ICL_ERR_BACKEND, "CUDA backend: %s failed: %s", step, cublasGetStatusString(st));
    return ICL_OK;
}

static int cuda_device_count(void) {
    int n = 0;
    cudaError_t err = cudaGetDeviceCount(&n);
    if (err != cudaSuccess) {
        cudaGetLastError(); /* no driver / no device: not an error for the caller */
        return 0;
    }
    return n;
}

static icl_status cuda_create(icl_backend **out) {
    if (!out)
        return icl_fail(ICL_ERR_INVALID_ARG, "cuda backend create: out is NULL");
    *out = NULL;
    int n = 0;
    cudaError_t err = cudaGetDeviceCount(&n);
    if (err != cudaSuccess || n == 0) {
        cudaGetLastError();
        return icl_fail(ICL_ERR_BACKEND,
                        "CUDA requested but no CUDA device is available: %s (nvidia-smi lists the devices "
                        "and the driver; CUDA_VISIBLE_DEVICES may hide them; use --backend cpu otherwise)",
                        err != cudaSuccess ? cudaGetErrorString(err) : "the driver reports 0 devices");
    }
    static const icl_backend_ops ops = make_ops();
    icl_backend *be = (icl_backend *)calloc(1, sizeof *be);
    icl_cuda_ctx *ctx = (icl_cuda_ctx *)calloc(1, sizeof *ctx);
    if (!be || !ctx) {
        free(be);
        free(ctx);
        return icl_fail(ICL_ERR_NOMEM, "cuda backend create: out of host memory");
    }
    icl_status s = init_ctx(ctx);
    if (s != ICL_OK) {
        free_ctx(ctx);
        free(be);
        return s;
    }
    be->ops = &ops;
    be->kind = ICL_BACKEND_CUDA;
    be->impl = ctx;
    *out = be;
    return ICL_OK;
}

/* ---- the plugin's entry (lib/engine/backend.h) ---- */

/* The libicl that loaded this plugin; the kernels report through it. */
static const icl_plugin_host *host;

/* The plugin has no lib/core of its own: its messages must reach the loading
 * libicl's icl_last_error(), so icl_fail forwards there. */
extern "C" icl_status icl_fail(icl_status s, const char *fmt, ...) {
    if (!host)
        return s;
    va_list ap;
    va_start(ap, fmt);
    icl_status r = host->failv(s, fmt, ap);
    va_end(ap);
    return r;
}

extern "C" __attribute__((visibility("default"))) const icl_cuda_plugin *icl_cuda_plugin_entry(
    const icl_plugin_host *h) {
    if (!h || h->abi != ICL_CUDA_PLUGIN_ABI || !h->failv)
        return NULL;
    host = h;
    static const icl_cuda_plugin plugin = {ICL_CUDA_PLUGIN_ABI, (uint32_t)sizeof(icl_backend_ops), cuda_device_count,
                                           cuda_create};
    return &plugin;
}
