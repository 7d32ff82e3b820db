/* The README's example: train a small model to copy strings, then save it. */
#include <stdio.h>
#include "icl/icl.h"

int main(void) {
    icl_config cfg = icl_config_default();          /* 2 layers, d_model 64, 4 heads */
    icl_toy_task task = {ICL_TOY_COPY, 10, 8};      /* copy a string of 8 symbols */
    cfg.vocab_size = icl_toy_vocab_size(&task);
    icl_model *m;
    icl_optimizer *opt;
    icl_optim_config oc = icl_optim_config_default();
    if (icl_model_create(&m, &cfg, ICL_BACKEND_CPU, 42) != ICL_OK ||
        icl_optimizer_create(&opt, m, &oc) != ICL_OK)
        return fprintf(stderr, "%s\n", icl_last_error()), 1;
    int32_t tok[32 * 18], tgt[32 * 18];
    float w[32 * 18];
    icl_rng rng;
    icl_rng_init(&rng, 42, "data");
    for (int step = 0; step < 500; step++) {
        icl_batch b;
        icl_step_stats st;
        icl_toy_fill(&task, &rng, 32, tok, tgt, w, &b);
        if (icl_train_step(m, opt, &b, 1, &st) != ICL_OK) return 1;
        if (step % 100 == 0) printf("step %ld loss %.4f\n", st.step, st.loss);
    }
    icl_checkpoint_save("copy.safetensors", m, opt, &rng);
    icl_optimizer_free(opt);
    icl_model_free(m);
    return 0;
}
