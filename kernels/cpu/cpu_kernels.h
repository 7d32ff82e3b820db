/* CPU kernels: the fast version of each operation (OpenMP across cores,
 * matrix products on the register tile of tile.h) and, beside it, a naive
 * reference (plain loops, one thread, accumulation in double) that the tests
 * compare against. Semantics, shapes and the accumulate (+=) convention of
 * every backward kernel are documented in lib/backend.h; the fast and naive
 * versions of a kernel take identical arguments.
 *
 * Determinism: every fast kernel produces bit-identical results for any
 * number of OpenMP threads. Reductions over rows (bias and weight-vector
 * gradients, embedding scatter-adds) are parallelised over the reduced-into
 * channels, never over the rows being summed. A forward kernel's output for
 * a row does not depend on the other rows of the batch. */
#ifndef ICL_CPU_KERNELS_H
#define ICL_CPU_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#define ICL_CPU_KERNEL_PAIR(ret, name, ...) \
    ret icl_cpu_##name(__VA_ARGS__);          \
    ret icl_cpu_##name##_naive(__VA_ARGS__)

ICL_CPU_KERNEL_PAIR(void, embed_forward, float *out, const int32_t *tokens, const float *wte, const float *wpe,
                    int B, int T, int C);
ICL_CPU_KERNEL_PAIR(void, embed_backward, float *dwte, float *dwpe, const float *dout, const int32_t *tokens,
                    int B, int T, int C);
ICL_CPU_KERNEL_PAIR(void, position_add_forward, float *out, const float *wpe, int B, int T, int C);
ICL_CPU_KERNEL_PAIR(void, position_add_backward, float *dwpe, const float *dout, int B, int T, int C);
ICL_CPU_KERNEL_PAIR(void, matmul_forward, float *out, const float *inp, const float *w, const float *bias,
                    int B, int T, int C, int OC);
ICL_CPU_KERNEL_PAIR(void, matmul_backward, float *dinp, float *dw, float *dbias, const float *dout,
                    const float *inp, const float *w, int N, int C, int OC);
ICL_CPU_KERNEL_PAIR(void, layernorm_forward, float *out, float *mean, float *rstd, const float *inp,
                    const float *w, const float *b, int N, int C);
ICL_CPU_KERNEL_PAIR(void, layernorm_backward, float *dinp, float *dw, float *db, const float *dout,
                    const float *inp, const float *w, const float *mean, const float *rstd, int N, int C);
ICL_CPU_KERNEL_PAIR(void, attention_scores_forward, float *scores, const float *qkv, int B, int T, int C,
                    int NH);
ICL_CPU_KERNEL_PAIR(void, attention_softmax_forward, float *probs, const float *scores, int B, int NH, int T);
ICL_CPU_KERNEL_PAIR(void, attention_values_forward, float *out, const float *probs, const float *qkv, int B,
                    int T, int C, int NH);
ICL_CPU_KERNEL_PAIR(void, attention_values_backward, float *dprobs, float *dqkv, const float *dout,
                    const float *probs, const float *qkv, int B, int T, int C, int NH);
ICL_CPU_KERNEL_PAIR(void, attention_softmax_backward, float *dscores, const float *dprobs, const float *probs,
                    int B, int NH, int T);
ICL_CPU_KERNEL_PAIR(void, attention_scores_backward, float *dqkv, const float *dscores, const float *qkv,
                    int B, int T, int C, int NH);
/* Up to this sequence length attention's products run on zero-padded copies
 * of a head's operands, beyond it on the operands in place; the _strided
 * versions always run in place (the softmax: row by row). Both give the same
 * bits (tests compare them). */
enum { ICL_CPU_ATTENTION_LOCAL_T = 128 };
void icl_cpu_attention_scores_forward_strided(float *scores, const float *qkv, int B, int T, int C, int NH);
void icl_cpu_attention_softmax_forward_strided(float *probs, const float *scores, int B, int NH, int T);
void icl_cpu_attention_values_forward_strided(float *out, const float *probs, const float *qkv, int B, int T, int C,
                                              int NH);
void icl_cpu_attention_values_backward_strided(float *dprobs, float *dqkv, const float *dout, const float *probs,
                                               const float *qkv, int B, int T, int C, int NH);
void icl_cpu_attention_scores_backward_strided(float *dqkv, const float *dscores, const float *qkv, int B, int T,
                                               int C, int NH);
/* The three attention forward kernels above in one pass per head, with the
 * same bits: scores and probs are stored as they would be, and on the local
 * path the softmax and the values product read them from scratch. */
void icl_cpu_attention_forward(float *scores, float *probs, float *out, const float *qkv, int B, int T, int C,
                               int NH);
/* The three attention backward kernels above in one pass per head, with the
 * same bits as running them in order on zeroed dprobs and dscores; those two
 * are workspace (their contents afterwards are unspecified). On the local
 * path they stay in a thread's scratch and are not touched at all. */
void icl_cpu_attention_backward(float *dqkv, float *dprobs, float *dscores, const float *dout, const float *probs,
                                const float *qkv, int B, int T, int C, int NH);
ICL_CPU_KERNEL_PAIR(void, gelu_forward, float *out, const float *inp, size_t N);
ICL_CPU_KERNEL_PAIR(void, gelu_backward, float *dinp, const float *inp, const float *dout, size_t N);
/* pre = inp . w^T + bias and post = GELU(pre) in one pass: the same bits as
 * matmul_forward then gelu_forward */
void icl_cpu_matmul_gelu_forward(float *pre, float *post, const float *inp, const float *w, const float *bias, int B,
                                 int T, int C, int OC);
/* p (n) = softmax of x (n) on the calling thread; returns the sum of
 * e^(x - max) and sets *mx_out (cross-entropy and attention rows use it) */
float icl_cpu_softmax_row(float *p, const float *x, int n, float *mx_out);
/* GELU of n elements on the calling thread (the fused matmul + GELU uses it) */
void icl_cpu_gelu_range(float *out, const float *inp, size_t n);
ICL_CPU_KERNEL_PAIR(void, residual_forward, float *out, const float *a, const float *b, size_t N);
ICL_CPU_KERNEL_PAIR(void, crossentropy_forward, float *losses, float *probs, const float *logits,
                    const int32_t *targets, const float *weights, int N, int V);
ICL_CPU_KERNEL_PAIR(void, crossentropy_backward, float *dlogits, const float *dlosses, const float *probs,
                    const int32_t *targets, int N, int V);
ICL_CPU_KERNEL_PAIR(void, mse_forward, float *losses, const float *out, const float *target,
                    const float *weights, int N, int D);
ICL_CPU_KERNEL_PAIR(void, mse_backward, float *dout, const float *dlosses, const float *out,
                    const float *target, int N, int D);
ICL_CPU_KERNEL_PAIR(double, sum_squares, const float *x, size_t n);
ICL_CPU_KERNEL_PAIR(void, adamw_update, float *params, float *m, float *v, const float *grads, size_t n,
                    float lr, float beta1, float beta2, float eps, float weight_decay, float grad_scale, long t);

#undef ICL_CPU_KERNEL_PAIR
#endif
