/* Checkpoints in the safetensors format.
 *
 * File = 8-byte little-endian header length N, N bytes of JSON header, then
 * the raw little-endian float32 tensor data. The header's "__metadata__"
 * holds the model config ("icl.config", JSON text), the optimizer step
 * ("icl.step"), the data RNG ("icl.rng") and the format version
 * ("icl.format"). Adam moments, when saved, are tensors named
 * "optim.m.<name>" and "optim.v.<name>". Full description:
 * docs/checkpoint-format.md. Writes are atomic: temp file, fsync, rename. */
#ifndef ICL_CHECKPOINT_H
#define ICL_CHECKPOINT_H

#include "icl/model.h"
#include "icl/rng.h"
#include "icl/train.h"

ICL_BEGIN_DECLS

/* Save model parameters; if `opt` is non-NULL also its moments, step count
 * and optimizer config; if `rng` is non-NULL also its state. */
icl_status icl_checkpoint_save(const char *path, const icl_model *m, const icl_optimizer *opt,
                               const icl_rng *rng);

/* A caller's own metadata: key "user.<name>", string value. */
typedef struct {
    const char *key;
    const char *value;
} icl_meta_entry;

/* icl_checkpoint_save plus n_meta "user.*" metadata entries (e.g. the task
 * family a model was trained on, "user.task"). */
icl_status icl_checkpoint_save_with_meta(const char *path, const icl_model *m, const icl_optimizer *opt,
                                         const icl_rng *rng, const icl_meta_entry *meta, int n_meta);

/* Copy the metadata value of `key` (any key, e.g. "user.task" or "icl.step")
 * into buf; ICL_ERR_INVALID_ARG if absent or longer than size-1 bytes. */
icl_status icl_checkpoint_read_meta(const char *path, const char *key, char *buf, size_t size);

/* Read just the config of a checkpoint (validates the whole header). */
icl_status icl_checkpoint_read_config(const char *path, icl_config *cfg);

/* Create a model from a checkpoint on `backend`. */
icl_status icl_checkpoint_load_model(const char *path, icl_backend_kind backend, icl_model **out);

/* Restore the optimizer (moments, step count) and/or the RNG from a checkpoint
 * saved with them. `opt` must belong to a model of the checkpoint's config.
 * Either pointer may be NULL. ICL_ERR_FORMAT if the checkpoint lacks the state. */
icl_status icl_checkpoint_load_state(const char *path, icl_optimizer *opt, icl_rng *rng);

/* Periodic checkpoints of a training run: the files step_<digits>.safetensors
 * of `dir` (as `icl train --checkpoint-every` writes them), by increasing step. */
typedef struct {
    int n;
    long *steps;   /* (n) */
    char **paths;  /* (n) dir/step_....safetensors */
} icl_checkpoint_list;

/* ICL_ERR_IO if dir cannot be read, ICL_ERR_INVALID_ARG if it holds no step checkpoint. */
icl_status icl_checkpoint_list_steps(const char *dir, icl_checkpoint_list *out);
void icl_checkpoint_list_free(icl_checkpoint_list *l);

/* Summary of a checkpoint for `icl info`: the metadata key/values and, per
 * tensor, name/dtype/shape/offsets, written as text lines through `emit`. */
icl_status icl_checkpoint_describe(const char *path, icl_line_fn emit, void *user);

ICL_END_DECLS
#endif
