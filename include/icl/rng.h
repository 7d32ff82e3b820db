/* Counter-based random numbers (Philox-4x32-10) with named streams.
 *
 * A stream is a 64-bit key plus a 64-bit counter. The key is derived from a
 * seed and a stream name, so "init", "data" and "dropout" never overlap, and
 * any stream can be split into independent children (e.g. one per prompt) by
 * deriving a key from the parent's key and an index. Same seed, same numbers,
 * on every machine. */
#ifndef ICL_RNG_H
#define ICL_RNG_H

#include <stdint.h>
#include "icl/status.h"

ICL_BEGIN_DECLS

typedef struct {
    uint64_t key;
    uint64_t counter;   /* index of the next 128-bit block */
    uint32_t buf[4];    /* current block */
    int buf_pos;        /* 0..4: next unused word of buf (4 = empty) */
} icl_rng;

/* Stream named `name` of seed `seed`. */
void icl_rng_init(icl_rng *r, uint64_t seed, const char *name);
/* Child stream `index` of `parent` (does not advance the parent). */
void icl_rng_split(icl_rng *child, const icl_rng *parent, uint64_t index);

uint32_t icl_rng_u32(icl_rng *r);
uint64_t icl_rng_u64(icl_rng *r);
/* Uniform in [0, n), without modulo bias; n > 0. */
uint32_t icl_rng_below(icl_rng *r, uint32_t n);
/* Uniform float in [0, 1) with 24 random bits. */
float icl_rng_uniform(icl_rng *r);
/* Standard normal (Box-Muller on two uniforms, in double). */
float icl_rng_normal(icl_rng *r);
/* Fisher-Yates shuffle of n ints. */
void icl_rng_shuffle_int(icl_rng *r, int *a, int n);

/* Save/restore a stream as text "key:counter:pos" (for checkpoints). */
void icl_rng_to_string(const icl_rng *r, char buf[64]);
icl_status icl_rng_from_string(icl_rng *r, const char *s);

ICL_END_DECLS
#endif
