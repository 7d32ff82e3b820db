/* Garg et al.'s curriculum: the active input dimensions and the examples per
 * prompt grow in steps over training. */
#include "error.h"
#include "icl/task.h"

icl_status icl_curriculum_default(int dims, int n_examples, icl_curriculum *out) {
    if (!out)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_curriculum_default: NULL argument");
    if (dims <= 0 || n_examples < 0)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_curriculum_default: need dims > 0 and n_examples >= 0, got %d and %d",
                        dims, n_examples);
    const int ds = dims < 5 ? dims : 5, stages = dims - ds;
    const int es = (int)((long)n_examples * ds / dims);
    out->dims_start = ds;
    out->dims_end = dims;
    out->dims_inc = 1;
    out->dims_every = 2000;
    out->examples_start = es;
    out->examples_end = n_examples;
    /* Ceiling division, so the examples reach the end no later than the dims. */
    out->examples_inc = stages > 0 && n_examples > es ? (n_examples - es + stages - 1) / stages : 1;
    out->examples_every = 2000;
    return ICL_OK;
}

icl_status icl_curriculum_short_prompts(int dims, int short_examples, long short_steps, int n_examples,
                                        icl_curriculum *out) {
    if (!out)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_curriculum_short_prompts: NULL argument");
    if (dims <= 0 || short_examples < 0 || short_examples >= n_examples || short_steps <= 0)
        return icl_fail(ICL_ERR_INVALID_ARG,
                        "icl_curriculum_short_prompts: need dims > 0, 0 <= short examples < %d (the full examples) "
                        "and short steps > 0, got dims %d, %d examples for %ld steps",
                        n_examples, dims, short_examples, short_steps);
    /* One jump of the examples-only schedule, at step short_steps. */
    *out = (icl_curriculum){.dims_start = dims, .dims_end = dims, .dims_inc = 1, .dims_every = 0,
                            .examples_start = short_examples, .examples_end = n_examples,
                            .examples_inc = n_examples - short_examples, .examples_every = short_steps};
    return ICL_OK;
}

icl_status icl_curriculum_validate(const icl_curriculum *c) {
    if (!c)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_curriculum_validate: NULL argument");
    if (c->dims_start < 1 || c->dims_end < c->dims_start)
        return icl_fail(ICL_ERR_CONFIG, "curriculum: dims must grow from >= 1, got %d -> %d", c->dims_start,
                        c->dims_end);
    if (c->examples_start < 0 || c->examples_end < c->examples_start)
        return icl_fail(ICL_ERR_CONFIG, "curriculum: examples must grow from >= 0, got %d -> %d", c->examples_start,
                        c->examples_end);
    if (c->dims_inc < 1 || c->examples_inc < 1)
        return icl_fail(ICL_ERR_CONFIG, "curriculum: increments must be >= 1, got %d and %d", c->dims_inc,
                        c->examples_inc);
    if (c->dims_every < 0 || c->examples_every < 0)
        return icl_fail(ICL_ERR_CONFIG, "curriculum: intervals must be >= 0, got %ld and %ld", c->dims_every,
                        c->examples_every);
    return ICL_OK;
}

static int stage_value(int start, int end, int inc, long every, long step) {
    if (every == 0)
        return end;
    long v = start + (long)inc * (step / every);
    return v < end ? (int)v : end;
}

icl_status icl_curriculum_at(const icl_curriculum *c, long step, int *active_dims, int *n_examples) {
    if (!active_dims || !n_examples)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_curriculum_at: NULL argument");
    ICL_TRY(icl_curriculum_validate(c));
    if (step < 0)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_curriculum_at: step must be >= 0, got %ld", step);
    *active_dims = stage_value(c->dims_start, c->dims_end, c->dims_inc, c->dims_every, step);
    *n_examples = stage_value(c->examples_start, c->examples_end, c->examples_inc, c->examples_every, step);
    return ICL_OK;
}
