/* The built-in toy tasks used by `icl train` without --task and by the
 * engine's learning test: copy or reverse a random string.
 *
 *   BOS s1 s2 ... sn SEP a1 a2 ... an      a = s (copy) or reversed s (reverse)
 *
 * Symbols are tokens 0..n_symbols-1, BOS = n_symbols, SEP = n_symbols+1, so
 * the vocabulary has n_symbols+2 tokens and a prompt 2n+2 positions. Only the
 * predictions of a1..an are scored (loss weight 1 at SEP and a1..a(n-1)). */
#ifndef ICL_TOY_H
#define ICL_TOY_H

#include <stdint.h>
#include "icl/model.h"
#include "icl/rng.h"

ICL_BEGIN_DECLS

typedef enum { ICL_TOY_COPY = 0, ICL_TOY_REVERSE = 1 } icl_toy_kind;

typedef struct {
    icl_toy_kind kind;
    int n_symbols; /* >= 2 */
    int length;    /* n >= 1 */
} icl_toy_task;

/* "copy" / "reverse" -> kind. */
icl_status icl_toy_parse(const char *name, icl_toy_kind *out);
int icl_toy_vocab_size(const icl_toy_task *t);
int icl_toy_seq_len(const icl_toy_task *t);

/* Fill B prompts into caller storage: tokens, targets (B,T) int32 and
 * weights (B,T) float, T = icl_toy_seq_len. One draw from rng selects a base
 * stream and prompt b uses its child b, so consecutive calls give new prompts
 * and prompt b does not depend on B. Points `batch` at the storage. */
icl_status icl_toy_fill(const icl_toy_task *t, icl_rng *rng, int B, int32_t *tokens, int32_t *targets,
                        float *weights, icl_batch *batch);

ICL_END_DECLS
#endif
