/* Causal multi-head attention in three steps (scores, softmax, weighted
 * values) and their backward steps.
 *
 * qkv (B,T,3C): q, k, v at channel offsets 0, C, 2C; head h at h*HS (HS = C/NH).
 * scores, probs (B,NH,T,T): row t holds s <= t, zeros above the diagonal.
 *
 * The six matrix products per (batch, head) run on the register tile of
 * tile.h, restricted to the causal triangle: masked entries of A count as 0
 * and tiles wholly above the diagonal are skipped. Every output element is
 * one multiply-add chain in a fixed order that depends only on T and its own
 * position within the sequence, so results do not depend on thread count or
 * on which batch row holds the sequence. Threads split the (batch, head)
 * pairs.
 *
 * Two ways to run a head's products, with the same bits:
 * - local (T <= ICL_CPU_ATTENTION_LOCAL_T): the head's operands are copied
 *   into a thread's scratch, zero-padded to whole tiles (rows to a multiple
 *   of MR, columns to a multiple of NR), every product runs on whole tiles
 *   with no packing and no edge copies, and only valid entries are copied
 *   back. Padding adds exact zero terms to a chain and nothing else. On the
 *   experiments' short prompts (T = 26, head size 16) packing and edge tiles
 *   cost more than the products themselves.
 * - strided (longer sequences, or no scratch): icl_cpu_product reads the
 *   operands in place. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "cpu_kernels.h"
#include "fast_math.h"
#include "lanes.h"
#include "tile.h"

enum { MR = ICL_TILE_MR, NR = ICL_TILE_NR };

/* Start of q (part 0), k (1) or v (2) of head h at (b,t). */
static const float *qkv_at(const float *qkv, int part, int b, int t, int h, int T, int C, int HS) {
    return qkv + ((long)b * T + t) * 3 * C + (long)part * C + (long)h * HS;
}

static float *dqkv_at(float *dqkv, int part, int b, int t, int h, int T, int C, int HS) {
    return dqkv + ((long)b * T + t) * 3 * C + (long)part * C + (long)h * HS;
}

static int round_up(int n, int m) { return (n + m - 1) / m * m; }

/* ---- the local path: a head's operands in zero-padded scratch ---- */

/* Padded sizes of one head: Tr rows (multiple of MR), Tc columns of a (T,T)
 * operand and Hc of a (T,HS) one (multiples of NR). */
typedef struct {
    int T, HS, Tr, Tc, Hc;
} head_shape;

static head_shape head_shape_of(int T, int HS) {
    head_shape s = {T, HS, round_up(T, MR), round_up(T, NR), round_up(HS, NR)};
    return s;
}

/* Floats of scratch one thread needs: the most any op uses (the fused
 * backward: three (Tr,Tc), three (Tr,Hc) and one (Hc,Tc) block; the others
 * less). A transposed operand read as A (probs^T, dscores^T)
 * has rows beyond T that read other entries: they only feed padding rows of
 * C, which are never copied back. */
static size_t scratch_floats(head_shape s) {
    size_t tt = (size_t)s.Tr * s.Tc, th = (size_t)s.Tr * s.Hc, ht = (size_t)s.Hc * s.Tc;
    return 3 * tt + 3 * th + ht;
}

/* A thread's scratch for the local path, or NULL where it does not apply
 * (long sequences) or cannot be had: the caller then takes the strided path,
 * which gives the same bits. */
static float *scratch_create(int T, int HS) {
    if (T > ICL_CPU_ATTENTION_LOCAL_T)
        return NULL;
    return malloc(scratch_floats(head_shape_of(T, HS)) * sizeof(float));
}

/* dst[0 .. n) = scale * src[0 .. n), dst[n .. width) = 0. Rows here are a few
 * dozen floats: plain loops, where a memset and a memcpy call per row cost
 * more than the copying. */
static inline void copy_row(float *dst, const float *src, int n, int width, float scale) {
#pragma omp simd
    for (int c = 0; c < n; c++)
        dst[c] = src[c] * scale;
#pragma omp simd
    for (int c = n; c < width; c++)
        dst[c] = 0.0f;
}

/* dst (rows_p, ld) = scale * src (rows, cols; rows src_rs apart), zero elsewhere */
static void load_block(float *dst, int rows_p, int ld, const float *src, long src_rs, int rows, int cols,
                       float scale) {
    for (int r = 0; r < rows; r++)
        copy_row(dst + (long)r * ld, src + r * src_rs, cols, ld, scale);
    memset(dst + (long)rows * ld, 0, (size_t)(rows_p - rows) * ld * sizeof *dst);
}

/* dst (cols_p, ld) = scale * src^T: dst[c][r] = src[r][c] for src (rows, cols; src_rs), zero elsewhere */
static void load_transposed(float *dst, int cols_p, int ld, const float *src, long src_rs, int rows, int cols,
                            float scale) {
    memset(dst, 0, (size_t)cols_p * ld * sizeof *dst);
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++)
            dst[(long)c * ld + r] = src[r * src_rs + c] * scale;
}

/* dst (Tr, Tc) = the causal triangle of src (T,T), zero elsewhere */
static void load_lower(float *dst, head_shape s, const float *src) {
    for (int t = 0; t < s.T; t++)
        copy_row(dst + (long)t * s.Tc, src + (long)t * s.T, t + 1, s.Tc, 1.0f);
    memset(dst + (long)s.T * s.Tc, 0, (size_t)(s.Tr - s.T) * s.Tc * sizeof *dst);
}

/* the causal triangle of dst (T,T) = that of src (Tr, Tc); the rest of dst is left as is */
static void store_lower(float *dst, head_shape s, const float *src) {
    for (int t = 0; t < s.T; t++)
        copy_row(dst + (long)t * s.T, src + (long)t * s.Tc, t + 1, t + 1, 1.0f);
}

/* dst (T,T) = the causal triangle of src (Tr, Tc), zeros above it: one pass over dst */
static void store_causal(float *dst, head_shape s, const float *src) {
    for (int t = 0; t < s.T; t++)
        copy_row(dst + (long)t * s.T, src + (long)t * s.Tc, t + 1, s.T, 1.0f);
}

/* dst (T, HS; rows dst_rs apart) = the valid part of src (Tr, Hc) */
static void store_block(float *dst, long dst_rs, head_shape s, const float *src) {
    for (int t = 0; t < s.T; t++)
        copy_row(dst + t * dst_rs, src + (long)t * s.Hc, s.HS, s.HS, 1.0f);
}

/* C (rows_p, cols_p; ldc) += A (rows_p, depth; a_rs, a_cs) . B (depth, cols_p; ldb)
 * on whole tiles, or C = A . B with from_zero (the chains start at zero in
 * registers: C need not be cleared first). Row group r0 runs over the depth
 * icl_cpu_product gives it (so each chain has the same terms, plus exact
 * zeros); with lower, tiles wholly above the diagonal are skipped. */
static void whole_tiles(icl_tile_fn tile, float *c, int ldc, int rows_p, int cols_p, const float *a, long a_rs,
                        long a_cs, const float *b, int ldb, int depth, icl_a_mask mask, int lower, int from_zero) {
    for (int r0 = 0; r0 < rows_p; r0 += MR) {
        int lo = mask == ICL_MASK_K_GE_ROW ? r0 : 0;
        int hi = mask == ICL_MASK_K_LE_ROW ? (r0 + MR < depth ? r0 + MR : depth) : depth;
        if (lo >= hi)
            continue;
        for (int j0 = 0; j0 < cols_p && !(lower && j0 > r0 + MR - 1); j0 += NR)
            tile(hi - lo, a + r0 * a_rs + lo * a_cs, a_rs, a_cs, b + (long)lo * ldb + j0, ldb,
                 from_zero ? NULL : c + (long)r0 * ldc + j0, ldc, c + (long)r0 * ldc + j0, ldc);
    }
}

/* The steps of a head on the local path, shared by the single kernels and the
 * fused ones; the operands named as scratch are the caller's blocks of it. */

/* sc (Tr,Tc) = q . (scale k)^T of head h of sequence b; tiles above the diagonal
 * stay unwritten and are never read. q (Tr,Hc), kt (Hc,Tc): scratch. */
static void head_scores(float *sc, float *q, float *kt, const float *qkv, int b, int h, head_shape s, int C,
                        float scale, icl_tile_fn tile) {
    load_block(q, s.Tr, s.Hc, qkv_at(qkv, 0, b, 0, h, s.T, C, s.HS), 3L * C, s.T, s.HS, 1.0f);
    load_transposed(kt, s.Hc, s.Tc, qkv_at(qkv, 1, b, 0, h, s.T, C, s.HS), 3L * C, s.T, s.HS, scale);
    whole_tiles(tile, sc, s.Tc, s.Tr, s.Tc, q, s.Hc, 1, kt, s.Tc, s.HS, ICL_MASK_NONE, 1, 1);
}

/* out (T,HS; rows C apart) = p . v, for p (Tr,Tc) zero above the diagonal and in
 * the padding (read as masked A). v, o (Tr,Hc): scratch. */
static void head_values(float *out, const float *p, float *v, float *o, const float *qkv, int b, int h,
                        head_shape s, int C, icl_tile_fn tile) {
    load_block(v, s.Tr, s.Hc, qkv_at(qkv, 2, b, 0, h, s.T, C, s.HS), 3L * C, s.T, s.HS, 1.0f);
    whole_tiles(tile, o, s.Hc, s.Tr, s.Hc, p, s.Tc, 1, v, s.Hc, s.T, ICL_MASK_K_LE_ROW, 0, 1);
    store_block(out, C, s, o);
}

/* dp (Tr,Tc) += dout . v^T on the causal triangle (= with dp_from_zero, whose
 * tiles above the diagonal stay unwritten), and v's part of dqkv += p^T . dout,
 * for p as in head_values. g, dv (Tr,Hc), vt (Hc,Tc): scratch. */
static void head_values_backward(float *dp, int dp_from_zero, float *dqkv, const float *dout, const float *p,
                                 float *g, float *dv, float *vt, const float *qkv, int b, int h, head_shape s, int C,
                                 icl_tile_fn tile) {
    float *dv_out = dqkv_at(dqkv, 2, b, 0, h, s.T, C, s.HS);
    load_block(g, s.Tr, s.Hc, dout, C, s.T, s.HS, 1.0f);
    load_block(dv, s.Tr, s.Hc, dv_out, 3L * C, s.T, s.HS, 1.0f);
    load_transposed(vt, s.Hc, s.Tc, qkv_at(qkv, 2, b, 0, h, s.T, C, s.HS), 3L * C, s.T, s.HS, 1.0f);
    whole_tiles(tile, dp, s.Tc, s.Tr, s.Tc, g, s.Hc, 1, vt, s.Tc, s.HS, ICL_MASK_NONE, 1, dp_from_zero);
    whole_tiles(tile, dv, s.Hc, s.Tr, s.Hc, p, 1, s.Tc, g, s.Hc, s.T, ICL_MASK_K_GE_ROW, 0, 0);
    store_block(dv_out, 3L * C, s, dv);
}

/* q's and k's parts of dqkv += ds . (scale k) and ds^T . (scale q), for ds
 * (Tr,Tc) zero above the diagonal and in the padding. k, q, acc (Tr,Hc): scratch. */
static void head_scores_backward(float *dqkv, const float *ds, float *k, float *q, float *acc, const float *qkv,
                                 int b, int h, head_shape s, int C, float scale, icl_tile_fn tile) {
    float *dq_out = dqkv_at(dqkv, 0, b, 0, h, s.T, C, s.HS), *dk_out = dqkv_at(dqkv, 1, b, 0, h, s.T, C, s.HS);
    load_block(k, s.Tr, s.Hc, qkv_at(qkv, 1, b, 0, h, s.T, C, s.HS), 3L * C, s.T, s.HS, scale);
    load_block(q, s.Tr, s.Hc, qkv_at(qkv, 0, b, 0, h, s.T, C, s.HS), 3L * C, s.T, s.HS, scale);
    load_block(acc, s.Tr, s.Hc, dq_out, 3L * C, s.T, s.HS, 1.0f);
    whole_tiles(tile, acc, s.Hc, s.Tr, s.Hc, ds, s.Tc, 1, k, s.Hc, s.T, ICL_MASK_K_LE_ROW, 0, 0);
    store_block(dq_out, 3L * C, s, acc);
    load_block(acc, s.Tr, s.Hc, dk_out, 3L * C, s.T, s.HS, 1.0f);
    whole_tiles(tile, acc, s.Hc, s.Tr, s.Hc, ds, 1, s.Tc, q, s.Hc, s.T, ICL_MASK_K_GE_ROW, 0, 0);
    store_block(dk_out, 3L * C, s, acc);
}

static void scores_forward_local(float *scores, const float *qkv, int b, int h, int T, int C, int HS,
                                 float scale, icl_tile_fn tile, float *scratch) {
    head_shape s = head_shape_of(T, HS);
    float *q = scratch, *kt = q + (size_t)s.Tr * s.Hc, *sc = kt + (size_t)s.Hc * s.Tc;
    head_scores(sc, q, kt, qkv, b, h, s, C, scale, tile);
    store_causal(scores, s, sc);
}

static void values_forward_local(float *out, const float *probs, const float *qkv, int b, int h, int T, int C,
                                 int HS, icl_tile_fn tile, float *scratch) {
    head_shape s = head_shape_of(T, HS);
    float *p = scratch, *v = p + (size_t)s.Tr * s.Tc, *o = v + (size_t)s.Tr * s.Hc;
    load_lower(p, s, probs);
    head_values(out, p, v, o, qkv, b, h, s, C, tile);
}

static void values_backward_local(float *dprobs, float *dqkv, const float *dout, const float *probs,
                                  const float *qkv, int b, int h, int T, int C, int HS, icl_tile_fn tile,
                                  float *scratch) {
    head_shape s = head_shape_of(T, HS);
    float *p = scratch, *dp = p + (size_t)s.Tr * s.Tc, *g = dp + (size_t)s.Tr * s.Tc;
    float *dv = g + (size_t)s.Tr * s.Hc, *vt = dv + (size_t)s.Tr * s.Hc;
    load_lower(p, s, probs);
    load_lower(dp, s, dprobs);
    head_values_backward(dp, 0, dqkv, dout, p, g, dv, vt, qkv, b, h, s, C, tile);
    store_lower(dprobs, s, dp);
}

static void scores_backward_local(float *dqkv, const float *dscores, const float *qkv, int b, int h, int T, int C,
                                  int HS, float scale, icl_tile_fn tile, float *scratch) {
    head_shape s = head_shape_of(T, HS);
    float *ds = scratch, *k = ds + (size_t)s.Tr * s.Tc, *q = k + (size_t)s.Tr * s.Hc, *acc = q + (size_t)s.Tr * s.Hc;
    load_lower(ds, s, dscores);
    head_scores_backward(dqkv, ds, k, q, acc, qkv, b, h, s, C, scale, tile);
}

/* ---- the strided path: icl_cpu_product on the operands in place ---- */

static void scores_forward_strided(float *scores, const float *qkv, int b, int h, int T, int C, int HS,
                                   float scale, icl_tile_fn tile) {
    memset(scores, 0, (size_t)T * T * sizeof *scores);
    /* scores = q . (scale k)^T */
    icl_product p = {T, T, HS, qkv_at(qkv, 0, b, 0, h, T, C, HS), 3L * C, 1, ICL_MASK_NONE,
                      qkv_at(qkv, 1, b, 0, h, T, C, HS), 1, 3L * C, scale, scores, T, 1, ICL_START_C, NULL};
    icl_cpu_product(&p, tile);
}

static void values_forward_strided(float *out, const float *probs, const float *qkv, int b, int h, int T, int C,
                                   int HS, icl_tile_fn tile) {
    for (int t = 0; t < T; t++)
        memset(out + (long)t * C, 0, (size_t)HS * sizeof *out);
    /* out = probs . v */
    icl_product p = {T, HS, T, probs, T, 1, ICL_MASK_K_LE_ROW, qkv_at(qkv, 2, b, 0, h, T, C, HS), 3L * C, 1, 1.0f,
                      out, C, 0, ICL_START_C, NULL};
    icl_cpu_product(&p, tile);
}

static void values_backward_strided(float *dprobs, float *dqkv, const float *dout, const float *probs,
                                    const float *qkv, int b, int h, int T, int C, int HS, icl_tile_fn tile) {
    /* dprobs += dout . v^T on the causal triangle */
    icl_product dp = {T, T, HS, dout, C, 1, ICL_MASK_NONE, qkv_at(qkv, 2, b, 0, h, T, C, HS), 1, 3L * C, 1.0f,
                       dprobs, T, 1, ICL_START_C, NULL};
    icl_cpu_product(&dp, tile);
    /* dv += probs^T . dout */
    icl_product dv = {T, HS, T, probs, 1, T, ICL_MASK_K_GE_ROW, dout, C, 1, 1.0f, dqkv_at(dqkv, 2, b, 0, h, T, C, HS),
                       3L * C, 0, ICL_START_C, NULL};
    icl_cpu_product(&dv, tile);
}

static void scores_backward_strided(float *dqkv, const float *dscores, const float *qkv, int b, int h, int T, int C,
                                    int HS, float scale, icl_tile_fn tile) {
    /* dq += dscores . (scale k) */
    icl_product dq = {T, HS, T, dscores, T, 1, ICL_MASK_K_LE_ROW, qkv_at(qkv, 1, b, 0, h, T, C, HS), 3L * C, 1, scale,
                       dqkv_at(dqkv, 0, b, 0, h, T, C, HS), 3L * C, 0, ICL_START_C, NULL};
    icl_cpu_product(&dq, tile);
    /* dk += dscores^T . (scale q) */
    icl_product dk = {T, HS, T, dscores, 1, T, ICL_MASK_K_GE_ROW, qkv_at(qkv, 0, b, 0, h, T, C, HS), 3L * C, 1, scale,
                       dqkv_at(dqkv, 1, b, 0, h, T, C, HS), 3L * C, 0, ICL_START_C, NULL};
    icl_cpu_product(&dk, tile);
}

/* ---- the ops: threads split the (batch, head) pairs; `local` picks the path ---- */

/* One op's arguments, shared by all its heads (the ones it does not use stay NULL). */
typedef struct {
    float *scores, *out, *dprobs, *dqkv;
    float *probs_out, *dscores_work; /* the fused kernels' (probs, dscores are inputs elsewhere) */
    const float *qkv, *probs, *dout, *dscores;
    int B, T, C, NH, HS;
    float scale; /* 1/sqrt(HS) */
    icl_tile_fn tile;
} attn_job;

static attn_job job_of(int B, int T, int C, int NH) {
    attn_job j = {.B = B, .T = T, .C = C, .NH = NH, .HS = C / NH, .tile = icl_cpu_tile()};
    j.scale = 1.0f / sqrtf((float)j.HS);
    return j;
}

/* One head of an op: the local path with scratch, the strided one without. */
typedef void (*head_fn)(const attn_job *j, int b, int h, float *scratch);

/* Runs `head` on every (batch, head) pair, each thread with its own scratch
 * when `local` asks for it and the sequence is short enough. */
static void for_each_head(const attn_job *j, head_fn head, int local) {
    int NH = j->NH, pairs = j->B * j->NH;
#pragma omp parallel
    {
        float *scratch = local ? scratch_create(j->T, j->HS) : NULL;
#pragma omp for schedule(static, NH)
        for (int bh = 0; bh < pairs; bh++)
            head(j, bh / NH, bh % NH, scratch);
        free(scratch);
    }
}

/* The (T,T) block of head h of sequence b in a (B,NH,T,T) tensor. */
static long head_block(const attn_job *j, int b, int h) { return ((long)b * j->NH + h) * j->T * j->T; }

/* Head h of sequence b in a (B,T,C) tensor. */
static long head_cols(const attn_job *j, int b, int h) { return (long)b * j->T * j->C + (long)h * j->HS; }

static void scores_forward_head(const attn_job *j, int b, int h, float *scratch) {
    float *s = j->scores + head_block(j, b, h);
    if (scratch)
        scores_forward_local(s, j->qkv, b, h, j->T, j->C, j->HS, j->scale, j->tile, scratch);
    else
        scores_forward_strided(s, j->qkv, b, h, j->T, j->C, j->HS, j->scale, j->tile);
}

static void scores_forward(float *scores, const float *qkv, int B, int T, int C, int NH, int local) {
    attn_job j = job_of(B, T, C, NH);
    j.scores = scores, j.qkv = qkv;
    for_each_head(&j, scores_forward_head, local);
}

// scores (B,NH,T,T) from qkv (B,T,3C)
void icl_cpu_attention_scores_forward(float *scores, const float *qkv, int B, int T, int C, int NH) {
    scores_forward(scores, qkv, B, T, C, NH, 1);
}

void icl_cpu_attention_scores_forward_strided(float *scores, const float *qkv, int B, int T, int C, int NH) {
    scores_forward(scores, qkv, B, T, C, NH, 0);
}

/* The max of x[0..n) in lanes. A max is exact in any order (a NaN makes the
 * row NaN through the sum either way); plain lanes keep it in registers,
 * where `omp simd reduction(max)` went through memory, lane by lane. */
static inline float row_max(const float *x, int n) {
    float m[ICL_LANES];
    for (int j = 0; j < ICL_LANES; j++)
        m[j] = x[0];
    int i = 0;
    for (; i + ICL_LANES <= n; i += ICL_LANES)
        for (int j = 0; j < ICL_LANES; j++)
            m[j] = x[i + j] > m[j] ? x[i + j] : m[j];
    for (; i < n; i++)
        m[0] = x[i] > m[0] ? x[i] : m[0];
    float mx = m[0];
    for (int j = 1; j < ICL_LANES; j++)
        mx = m[j] > mx ? m[j] : mx;
    return mx;
}

/* Rows t < T of p (rows ldp apart) = causal row softmax of those of x (ldx
 * apart), with the operations of icl_cpu_softmax_row on each element
 * (x - its row's max, the exponential, the row's sum, the scale); entries
 * t < s < width of each row are set to 0. x is read only where s <= t. */
ICL_WIDE_CLONES static void softmax_causal_rows(float *p, long ldp, const float *x, long ldx, int T, int width) {
    for (int t = 0; t < T; t++, p += ldp, x += ldx) {
        float mx = row_max(x, t + 1);
#pragma omp simd
        for (int s = 0; s <= t; s++)
            p[s] = icl_fast_exp_minus_abs(x[s] - mx); /* x - mx <= 0 */
        float inv = 1.0f / icl_lanes_sum(p, t + 1);
#pragma omp simd
        for (int s = 0; s <= t; s++)
            p[s] *= inv;
        for (int s = t + 1; s < width; s++)
            p[s] = 0.0f;
    }
}

static void softmax_head(float *probs, const float *scores, int T) { softmax_causal_rows(probs, T, scores, T, T, T); }

// probs (B,NH,T,T) = causal row softmax of scores (B,NH,T,T)
void icl_cpu_attention_softmax_forward(float *probs, const float *scores, int B, int NH, int T) {
#pragma omp parallel for schedule(static)
    for (int bh = 0; bh < B * NH; bh++)
        softmax_head(probs + (long)bh * T * T, scores + (long)bh * T * T, T);
}

void icl_cpu_attention_softmax_forward_strided(float *probs, const float *scores, int B, int NH, int T) {
    long rows = (long)B * NH * T;
#pragma omp parallel for schedule(static)
    for (long r = 0; r < rows; r++) {
        int n = (int)(r % T) + 1; /* row t sees s <= t */
        float mx;
        icl_cpu_softmax_row(probs + r * T, scores + r * T, n, &mx);
        memset(probs + r * T + n, 0, (size_t)(T - n) * sizeof *probs);
    }
}

static void values_forward_head(const attn_job *j, int b, int h, float *scratch) {
    float *o = j->out + head_cols(j, b, h);
    const float *p = j->probs + head_block(j, b, h);
    if (scratch)
        values_forward_local(o, p, j->qkv, b, h, j->T, j->C, j->HS, j->tile, scratch);
    else
        values_forward_strided(o, p, j->qkv, b, h, j->T, j->C, j->HS, j->tile);
}

static void values_forward(float *out, const float *probs, const float *qkv, int B, int T, int C, int NH, int local) {
    attn_job j = job_of(B, T, C, NH);
    j.out = out, j.probs = probs, j.qkv = qkv;
    for_each_head(&j, values_forward_head, local);
}

// out (B,T,C) from probs (B,NH,T,T) and the v part of qkv (B,T,3C)
void icl_cpu_attention_values_forward(float *out, const float *probs, const float *qkv, int B, int T, int C,
                                      int NH) {
    values_forward(out, probs, qkv, B, T, C, NH, 1);
}

void icl_cpu_attention_values_forward_strided(float *out, const float *probs, const float *qkv, int B, int T, int C,
                                              int NH) {
    values_forward(out, probs, qkv, B, T, C, NH, 0);
}

static void values_backward_head(const attn_job *j, int b, int h, float *scratch) {
    float *dp = j->dprobs + head_block(j, b, h);
    const float *g = j->dout + head_cols(j, b, h), *p = j->probs + head_block(j, b, h);
    if (scratch)
        values_backward_local(dp, j->dqkv, g, p, j->qkv, b, h, j->T, j->C, j->HS, j->tile, scratch);
    else
        values_backward_strided(dp, j->dqkv, g, p, j->qkv, b, h, j->T, j->C, j->HS, j->tile);
}

static void values_backward(float *dprobs, float *dqkv, const float *dout, const float *probs, const float *qkv,
                            int B, int T, int C, int NH, int local) {
    attn_job j = job_of(B, T, C, NH);
    j.dprobs = dprobs, j.dqkv = dqkv, j.dout = dout, j.probs = probs, j.qkv = qkv;
    for_each_head(&j, values_backward_head, local);
}

// dprobs (B,NH,T,T) and the v part of dqkv (B,T,3C) from dout (B,T,C)
void icl_cpu_attention_values_backward(float *dprobs, float *dqkv, const float *dout, const float *probs,
                                       const float *qkv, int B, int T, int C, int NH) {
    values_backward(dprobs, dqkv, dout, probs, qkv, B, T, C, NH, 1);
}

void icl_cpu_attention_values_backward_strided(float *dprobs, float *dqkv, const float *dout, const float *probs,
                                               const float *qkv, int B, int T, int C, int NH) {
    values_backward(dprobs, dqkv, dout, probs, qkv, B, T, C, NH, 0);
}

/* ds[0..n) += p * (dp - p . dp) */
ICL_WIDE_CLONES static void softmax_backward_row(float *ds, const float *dp, const float *p, int n) {
    float pd = icl_lanes_dot(p, dp, n);
    for (int s = 0; s < n; s++)
        ds[s] += p[s] * (dp[s] - pd);
}

// dscores (B,NH,T,T) += causal softmax Jacobian^T . dprobs
void icl_cpu_attention_softmax_backward(float *dscores, const float *dprobs, const float *probs, int B, int NH,
                                        int T) {
    long rows = (long)B * NH * T;
#pragma omp parallel for schedule(static)
    for (long r = 0; r < rows; r++)
        softmax_backward_row(dscores + r * T, dprobs + r * T, probs + r * T, (int)(r % T) + 1);
}

static void scores_backward_head(const attn_job *j, int b, int h, float *scratch) {
    const float *ds = j->dscores + head_block(j, b, h);
    if (scratch)
        scores_backward_local(j->dqkv, ds, j->qkv, b, h, j->T, j->C, j->HS, j->scale, j->tile, scratch);
    else
        scores_backward_strided(j->dqkv, ds, j->qkv, b, h, j->T, j->C, j->HS, j->scale, j->tile);
}

static void scores_backward(float *dqkv, const float *dscores, const float *qkv, int B, int T, int C, int NH,
                            int local) {
    attn_job j = job_of(B, T, C, NH);
    j.dqkv = dqkv, j.dscores = dscores, j.qkv = qkv;
    for_each_head(&j, scores_backward_head, local);
}

// q and k parts of dqkv (B,T,3C) from dscores (B,NH,T,T)
void icl_cpu_attention_scores_backward(float *dqkv, const float *dscores, const float *qkv, int B, int T, int C,
                                       int NH) {
    scores_backward(dqkv, dscores, qkv, B, T, C, NH, 1);
}

void icl_cpu_attention_scores_backward_strided(float *dqkv, const float *dscores, const float *qkv, int B, int T,
                                               int C, int NH) {
    scores_backward(dqkv, dscores, qkv, B, T, C, NH, 0);
}

/* ---- the fused forward: scores, softmax and values per head ----
 * The scores go from the tile straight into the softmax and the probs from
 * the softmax straight into the values product, in scratch; scores and
 * probs are still stored (a caller may read them after the pass, and the
 * backward needs probs). The same operations as the three kernels. */

static void attention_forward_local(const attn_job *j, int b, int h, float *scratch) {
    head_shape s = head_shape_of(j->T, j->HS);
    size_t tt = (size_t)s.Tr * s.Tc, th = (size_t)s.Tr * s.Hc;
    float *sc = scratch, *p = sc + tt, *q = p + tt, *v = q + th, *o = v + th, *kt = o + th;
    head_scores(sc, q, kt, j->qkv, b, h, s, j->C, j->scale, j->tile);
    store_causal(j->scores + head_block(j, b, h), s, sc);
    /* probs, zero above the diagonal and in the padding, as head_values reads them */
    softmax_causal_rows(p, s.Tc, sc, s.Tc, s.T, s.Tc);
    memset(p + (long)s.T * s.Tc, 0, (size_t)(s.Tr - s.T) * s.Tc * sizeof *p);
    store_causal(j->probs_out + head_block(j, b, h), s, p);
    head_values(j->out + head_cols(j, b, h), p, v, o, j->qkv, b, h, s, j->C, j->tile);
}

/* Without scratch (long sequences): the three steps on the operands in place. */
static void attention_forward_strided(const attn_job *j, int b, int h) {
    int T = j->T;
    float *sc = j->scores + head_block(j, b, h), *p = j->probs_out + head_block(j, b, h);
    scores_forward_strided(sc, j->qkv, b, h, T, j->C, j->HS, j->scale, j->tile);
    softmax_head(p, sc, T);
    values_forward_strided(j->out + head_cols(j, b, h), p, j->qkv, b, h, T, j->C, j->HS, j->tile);
}

static void attention_forward_head(const attn_job *j, int b, int h, float *scratch) {
    if (scratch)
        attention_forward_local(j, b, h, scratch);
    else
        attention_forward_strided(j, b, h);
}

// scores, probs (B,NH,T,T) and out (B,T,C) from qkv (B,T,3C)
void icl_cpu_attention_forward(float *scores, float *probs, float *out, const float *qkv, int B, int T, int C,
                               int NH) {
    attn_job j = job_of(B, T, C, NH);
    j.scores = scores, j.probs_out = probs, j.out = out, j.qkv = qkv;
    for_each_head(&j, attention_forward_head, 1);
}

/* ---- the fused backward: values, softmax and scores backward per head ----
 * dprobs and dscores only carry the gradient from one step to the next, so
 * per head they stay in scratch (local path): no zeroing, storing and
 * reloading of two (B,NH,T,T) tensors. Each value is computed by the same
 * operations, in the same order, as the three kernels on zeroed dprobs and
 * dscores: dprobs' chains start from zero in registers, dscores' rows from
 * zeroed scratch. */

static void attention_backward_local(const attn_job *j, int b, int h, float *scratch) {
    head_shape s = head_shape_of(j->T, j->HS);
    size_t tt = (size_t)s.Tr * s.Tc, th = (size_t)s.Tr * s.Hc;
    float *p = scratch, *dp = p + tt, *ds = dp + tt, *g = ds + tt, *dv = g + th, *acc = dv + th, *vt = acc + th;
    load_lower(p, s, j->probs + head_block(j, b, h));
    head_values_backward(dp, 1, j->dqkv, j->dout + head_cols(j, b, h), p, g, dv, vt, j->qkv, b, h, s, j->C,
                         j->tile);
    /* dscores: each row from zero, zero above the diagonal and in the padding, as head_scores_backward reads it */
    for (int t = 0; t < s.T; t++) {
        float *row = ds + (long)t * s.Tc;
        memset(row, 0, (size_t)s.Tc * sizeof *row);
        softmax_backward_row(row, dp + (long)t * s.Tc, p + (long)t * s.Tc, t + 1);
    }
    memset(ds + (long)s.T * s.Tc, 0, (size_t)(s.Tr - s.T) * s.Tc * sizeof *ds);
    /* g and dv are free again: they hold k and q */
    head_scores_backward(j->dqkv, ds, g, dv, acc, j->qkv, b, h, s, j->C, j->scale, j->tile);
}

/* Without scratch (long sequences): the three steps on the head's blocks of
 * dprobs and dscores, zeroed first, on the operands in place. */
static void attention_backward_strided(const attn_job *j, int b, int h) {
    int T = j->T;
    float *dp = j->dprobs + head_block(j, b, h), *ds = j->dscores_work + head_block(j, b, h);
    const float *p = j->probs + head_block(j, b, h);
    memset(dp, 0, (size_t)T * T * sizeof *dp);
    memset(ds, 0, (size_t)T * T * sizeof *ds);
    values_backward_strided(dp, j->dqkv, j->dout + head_cols(j, b, h), p, j->qkv, b, h, T, j->C, j->HS, j->tile);
    for (int t = 0; t < T; t++)
        softmax_backward_row(ds + (long)t * T, dp + (long)t * T, p + (long)t * T, t + 1);
    scores_backward_strided(j->dqkv, ds, j->qkv, b, h, T, j->C, j->HS, j->scale, j->tile);
}

static void attention_backward_head(const attn_job *j, int b, int h, float *scratch) {
    if (scratch)
        attention_backward_local(j, b, h, scratch);
    else
        attention_backward_strided(j, b, h);
}

// dqkv (B,T,3C) += attention backward from dout (B,T,C); dprobs, dscores (B,NH,T,T): workspace
void icl_cpu_attention_backward(float *dqkv, float *dprobs, float *dscores, const float *dout, const float *probs,
                                const float *qkv, int B, int T, int C, int NH) {
    attn_job j = job_of(B, T, C, NH);
    j.dqkv = dqkv, j.dprobs = dprobs, j.dscores_work = dscores, j.dout = dout, j.probs = probs, j.qkv = qkv;
    for_each_head(&j, attention_backward_head, 1);
}

/* ---- the naive references (one thread, double accumulation) ---- */

void icl_cpu_attention_scores_forward_naive(float *scores, const float *qkv, int B, int T, int C, int NH) {
    int HS = C / NH;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++)
                for (int s = 0; s < T; s++) {
                    double acc = 0.0;
                    if (s <= t) {
                        const float *q = qkv_at(qkv, 0, b, t, h, T, C, HS);
                        const float *k = qkv_at(qkv, 1, b, s, h, T, C, HS);
                        for (int i = 0; i < HS; i++)
                            acc += (double)q[i] * (double)k[i];
                        acc /= sqrt((double)HS);
                    }
                    scores[(((long)b * NH + h) * T + t) * T + s] = (float)acc;
                }
}

void icl_cpu_attention_softmax_forward_naive(float *probs, const float *scores, int B, int NH, int T) {
    long rows = (long)B * NH * T;
    for (long r = 0; r < rows; r++) {
        int t = (int)(r % T);
        const float *x = scores + r * T;
        double mx = x[0], sum = 0.0;
        for (int s = 1; s <= t; s++)
            mx = x[s] > mx ? x[s] : mx;
        for (int s = 0; s <= t; s++)
            sum += exp((double)x[s] - mx);
        for (int s = 0; s < T; s++)
            probs[r * T + s] = s <= t ? (float)(exp((double)x[s] - mx) / sum) : 0.0f;
    }
}

void icl_cpu_attention_values_forward_naive(float *out, const float *probs, const float *qkv, int B, int T, int C,
                                            int NH) {
    int HS = C / NH;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int h = 0; h < NH; h++)
                for (int i = 0; i < HS; i++) {
                    double acc = 0.0;
                    for (int s = 0; s <= t; s++)
                        acc += (double)probs[(((long)b * NH + h) * T + t) * T + s] *
                               (double)qkv_at(qkv, 2, b, s, h, T, C, HS)[i];
                    out[((long)b * T + t) * C + (long)h * HS + i] = (float)acc;
                }
}

void icl_cpu_attention_values_backward_naive(float *dprobs, float *dqkv, const float *dout, const float *probs,
                                             const float *qkv, int B, int T, int C, int NH) {
    int HS = C / NH;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const float *p = probs + ((long)b * NH + h) * T * T;
            float *dp = dprobs + ((long)b * NH + h) * T * T;
            for (int t = 0; t < T; t++)
                for (int s = 0; s <= t; s++) {
                    const float *g = dout + ((long)b * T + t) * C + (long)h * HS;
                    const float *v = qkv_at(qkv, 2, b, s, h, T, C, HS);
                    double acc = 0.0;
                    for (int i = 0; i < HS; i++)
                        acc += (double)g[i] * (double)v[i];
                    dp[(long)t * T + s] = (float)((double)dp[(long)t * T + s] + acc);
                }
            for (int s = 0; s < T; s++) {
                float *dv = dqkv_at(dqkv, 2, b, s, h, T, C, HS);
                for (int i = 0; i < HS; i++) {
                    double acc = 0.0;
                    for (int t = s; t < T; t++)
                        acc += (double)p[(long)t * T + s] * (double)dout[((long)b * T + t) * C + (long)h * HS + i];
                    dv[i] = (float)((double)dv[i] + acc);
                }
            }
        }
}

void icl_cpu_attention_softmax_backward_naive(float *dscores, const float *dprobs, const float *probs, int B,
                                              int NH, int T) {
    long rows = (long)B * NH * T;
    for (long r = 0; r < rows; r++) {
        int t = (int)(r % T);
        const float *p = probs + r * T, *dp = dprobs + r * T;
        double pd = 0.0;
        for (int s = 0; s <= t; s++)
            pd += (double)p[s] * (double)dp[s];
        for (int s = 0; s <= t; s++)
            dscores[r * T + s] = (float)((double)dscores[r * T + s] + (double)p[s] * ((double)dp[s] - pd));
    }
}

void icl_cpu_attention_scores_backward_naive(float *dqkv, const float *dscores, const float *qkv, int B, int T,
                                             int C, int NH) {
    int HS = C / NH;
    double scale = 1.0 / sqrt((double)HS);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const float *ds = dscores + ((long)b * NH + h) * T * T;
            for (int t = 0; t < T; t++) {
                float *dq = dqkv_at(dqkv, 0, b, t, h, T, C, HS);
                float *dk = dqkv_at(dqkv, 1, b, t, h, T, C, HS);
                for (int i = 0; i < HS; i++) {
                    double acc_q = 0.0, acc_k = 0.0;
                    for (int s = 0; s <= t; s++)
                        acc_q += (double)ds[(long)t * T + s] * (double)qkv_at(qkv, 1, b, s, h, T, C, HS)[i];
                    for (int u = t; u < T; u++)
                        acc_k += (double)ds[(long)u * T + t] * (double)qkv_at(qkv, 0, b, u, h, T, C, HS)[i];
                    dq[i] = (float)((double)dq[i] + acc_q * scale);
                    dk[i] = (float)((double)dk[i] + acc_k * scale);
                }
            }
        }
}
