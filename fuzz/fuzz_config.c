/* icl_config_from_json on arbitrary text; a config it accepts and that
 * validates must survive icl_config_to_json and parse back to the same ints
 * (d_ff compared after its 0 -> 4*d_model default, which the JSON spells out). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "icl/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    icl_config cfg;
    if (icl_config_from_json(&cfg, text) == ICL_OK && icl_config_validate(&cfg) == ICL_OK) {
        char json[1024];
        icl_config back;
        if (icl_config_to_json(&cfg, json, sizeof json) != ICL_OK || icl_config_from_json(&back, json) != ICL_OK)
            abort();
        if (back.mode != cfg.mode || back.n_layer != cfg.n_layer || back.d_model != cfg.d_model ||
            back.n_head != cfg.n_head || icl_config_d_ff(&back) != icl_config_d_ff(&cfg) || back.ctx != cfg.ctx ||
            back.vocab_size != cfg.vocab_size || back.tie_embeddings != cfg.tie_embeddings ||
            back.d_in != cfg.d_in || back.d_out != cfg.d_out)
            abort();
    }
    free(text);
    return 0;
}
