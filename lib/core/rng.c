/* Philox-4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3",
 * SC'11): a keyed bijection of a 128-bit counter. The n-th block of a stream
 * is philox(key, n), so any position of any stream is reachable directly. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "error.h"
#include "icl/rng.h"

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

static void philox_block(uint32_t out[4], uint64_t key, uint64_t counter) {
    uint32_t c0 = (uint32_t)counter, c1 = (uint32_t)(counter >> 32), c2 = 0, c3 = 0;
    uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0;
        uint64_t p1 = (uint64_t)PHILOX_M1 * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        uint32_t n1 = (uint32_t)p1;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        uint32_t n3 = (uint32_t)p0;
        c0 = n0; c1 = n1; c2 = n2; c3 = n3;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

/* SplitMix64 finaliser: spreads seeds and names over the whole key space. */
static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t hash_name(const char *name) {
    uint64_t h = 0xCBF29CE484222325ull; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)(name ? name : ""); *p; p++)
        h = (h ^ *p) * 0x100000001B3ull;
    return h;
}

void icl_rng_init(icl_rng *r, uint64_t seed, const char *name) {
    r->key = mix64(mix64(seed) ^ hash_name(name));
    r->counter = 0;
    r->buf_pos = 4;
}

void icl_rng_split(icl_rng *child, const icl_rng *parent, uint64_t index) {
    child->key = mix64(parent->key ^ mix64(index + 0x632BE59BD9B4E019ull));
    child->counter = 0;
    child->buf_pos = 4;
}

uint32_t icl_rng_u32(icl_rng *r) {
    if (r->buf_pos >= 4) {
        philox_block(r->buf, r->key, r->counter++);
        r->buf_pos = 0;
    }
    return r->buf[r->buf_pos++];
}

uint64_t icl_rng_u64(icl_rng *r) {
    uint64_t hi = icl_rng_u32(r);
    return (hi << 32) | icl_rng_u32(r);
}

uint32_t icl_rng_below(icl_rng *r, uint32_t n) {
    /* Lemire's multiply-and-reject: unbiased without a division per draw. */
    uint64_t m = (uint64_t)icl_rng_u32(r) * n;
    uint32_t low = (uint32_t)m;
    if (low < n) {
        uint32_t threshold = (uint32_t)(-n) % n;
        while (low < threshold) {
            m = (uint64_t)icl_rng_u32(r) * n;
            low = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

float icl_rng_uniform(icl_rng *r) { return (float)(icl_rng_u32(r) >> 8) * (1.0f / 16777216.0f); }

float icl_rng_normal(icl_rng *r) {
    /* u1 in (0,1] so the log is finite. */
    double u1 = ((double)(icl_rng_u32(r) >> 8) + 1.0) / 16777216.0;
    double u2 = (double)(icl_rng_u32(r) >> 8) / 16777216.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

void icl_rng_shuffle_int(icl_rng *r, int *a, int n) {
    for (int i = n - 1; i > 0; i--) {
        int j = (int)icl_rng_below(r, (uint32_t)(i + 1));
        int t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

void icl_rng_to_string(const icl_rng *r, char buf[64]) {
    snprintf(buf, 64, "%016" PRIx64 ":%" PRIu64 ":%d", r->key, r->counter, r->buf_pos);
}

icl_status icl_rng_from_string(icl_rng *r, const char *s) {
    if (!r || !s)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_rng_from_string: NULL argument");
    uint64_t key, counter;
    int pos, used = 0;
    if (sscanf(s, "%16" SCNx64 ":%" SCNu64 ":%d%n", &key, &counter, &pos, &used) != 3 || s[used] != '\0' ||
        pos < 0 || pos > 4 || (pos < 4 && counter == 0))
        return icl_fail(ICL_ERR_FORMAT, "icl_rng_from_string: malformed RNG state \"%.40s\"", s);
    r->key = key;
    r->counter = counter;
    r->buf_pos = pos;
    /* The partly used block is the one before `counter`. */
    if (pos < 4)
        philox_block(r->buf, key, counter - 1);
    return ICL_OK;
}
