/* Model configuration: defaults, validation, size accounting, JSON. */
#include <cjson/cJSON.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "error.h"
#include "icl/config.h"

/* Limits that keep every size computation far from integer overflow. */
#define MAX_DIM 65536
#define MAX_LAYERS 1024

icl_config icl_config_default(void) {
    icl_config c = {0};
    c.mode = ICL_MODE_TOKEN;
    c.n_layer = 2;
    c.d_model = 64;
    c.n_head = 4;
    c.d_ff = 0;
    c.ctx = 128;
    c.vocab_size = 32;
    c.tie_embeddings = 1;
    return c;
}

int icl_config_d_ff(const icl_config *cfg) { return cfg->d_ff > 0 ? cfg->d_ff : 4 * cfg->d_model; }

float icl_config_init_std(const icl_config *cfg) {
    return cfg->init_std > 0.0f ? cfg->init_std : 1.0f / sqrtf((float)cfg->d_model);
}

static icl_status check_range(const char *field, int v, int lo, int hi) {
    if (v < lo || v > hi)
        return icl_fail(ICL_ERR_CONFIG, "config: %s = %d is out of range [%d, %d]", field, v, lo, hi);
    return ICL_OK;
}

icl_status icl_config_validate(const icl_config *cfg) {
    if (!cfg)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_config_validate: cfg is NULL");
    if (cfg->mode != ICL_MODE_TOKEN && cfg->mode != ICL_MODE_VECTOR)
        return icl_fail(ICL_ERR_CONFIG, "config: mode = %d is neither token (0) nor vector (1)", (int)cfg->mode);
    ICL_TRY(check_range("n_layer", cfg->n_layer, 1, MAX_LAYERS));
    ICL_TRY(check_range("d_model", cfg->d_model, 1, MAX_DIM));
    ICL_TRY(check_range("n_head", cfg->n_head, 1, cfg->d_model));
    if (cfg->d_model % cfg->n_head != 0)
        return icl_fail(ICL_ERR_CONFIG, "config: d_model = %d is not divisible by n_head = %d", cfg->d_model,
                        cfg->n_head);
    if (cfg->d_ff != 0)
        ICL_TRY(check_range("d_ff", cfg->d_ff, 1, 4 * MAX_DIM));
    ICL_TRY(check_range("ctx", cfg->ctx, 1, MAX_DIM));
    if (!(cfg->init_std >= 0.0f && cfg->init_std <= 10.0f))
        return icl_fail(ICL_ERR_CONFIG, "config: init_std = %g must be in [0, 10] (0 = 1/sqrt(d_model))",
                        (double)cfg->init_std);
    if (cfg->mode == ICL_MODE_TOKEN) {
        ICL_TRY(check_range("vocab_size", cfg->vocab_size, 1, 1 << 24));
        if (cfg->tie_embeddings != 0 && cfg->tie_embeddings != 1)
            return icl_fail(ICL_ERR_CONFIG, "config: tie_embeddings = %d must be 0 or 1", cfg->tie_embeddings);
    } else {
        ICL_TRY(check_range("d_in", cfg->d_in, 1, MAX_DIM));
        ICL_TRY(check_range("d_out", cfg->d_out, 1, MAX_DIM));
    }
    return ICL_OK;
}

size_t icl_config_num_params(const icl_config *cfg) {
    size_t C = (size_t)cfg->d_model, F = (size_t)icl_config_d_ff(cfg), L = (size_t)cfg->n_layer;
    size_t n = (size_t)cfg->ctx * C;                                   /* pos_embed */
    size_t per_layer = 2 * C + 3 * C * C + 3 * C + C * C + C + 2 * C   /* ln1, qkv, proj, ln2 */
                       + F * C + F + C * F + C;                        /* mlp */
    n += L * per_layer + 2 * C;                                        /* blocks, ln_f */
    if (cfg->mode == ICL_MODE_TOKEN)
        n += (size_t)cfg->vocab_size * C * (cfg->tie_embeddings ? 1 : 2);
    else
        n += C * (size_t)cfg->d_in + C + (size_t)cfg->d_out * C + (size_t)cfg->d_out;
    return n;
}

icl_status icl_config_to_json(const icl_config *cfg, char *buf, size_t buf_size) {
    if (!cfg || !buf)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_config_to_json: NULL argument");
    int n = snprintf(buf, buf_size,
                     "{\"mode\":\"%s\",\"n_layer\":%d,\"d_model\":%d,\"n_head\":%d,\"d_ff\":%d,\"ctx\":%d,"
                     "\"vocab_size\":%d,\"tie_embeddings\":%d,\"d_in\":%d,\"d_out\":%d,\"init_std\":%.9g}",
                     cfg->mode == ICL_MODE_TOKEN ? "token" : "vector", cfg->n_layer, cfg->d_model, cfg->n_head,
                     icl_config_d_ff(cfg), cfg->ctx, cfg->vocab_size, cfg->tie_embeddings, cfg->d_in, cfg->d_out,
                     (double)cfg->init_std);
    if (n < 0 || (size_t)n >= buf_size)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_config_to_json: buffer of %zu bytes is too small", buf_size);
    return ICL_OK;
}

static icl_status json_int(const cJSON *obj, const char *key, int *out) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsNumber(item))
        return icl_fail(ICL_ERR_FORMAT, "config JSON: \"%s\" is missing or not a number", key);
    double v = item->valuedouble;
    /* Range first: converting a double outside int's range is undefined. */
    if (!(v >= INT_MIN && v <= INT_MAX) || v != (double)(int)v)
        return icl_fail(ICL_ERR_FORMAT, "config JSON: \"%s\" = %g is not an integer", key, v);
    *out = (int)v;
    return ICL_OK;
}

icl_status icl_config_from_json(icl_config *cfg, const char *json) {
    if (!cfg || !json)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_config_from_json: NULL argument");
    cJSON *root = cJSON_Parse(json);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return icl_fail(ICL_ERR_FORMAT, "config JSON: not a JSON object");
    }
    icl_config c = {0};
    icl_status s = ICL_OK;
    const cJSON *mode = cJSON_GetObjectItemCaseSensitive(root, "mode");
    if (cJSON_IsString(mode) && strcmp(mode->valuestring, "token") == 0)
        c.mode = ICL_MODE_TOKEN;
    else if (cJSON_IsString(mode) && strcmp(mode->valuestring, "vector") == 0)
        c.mode = ICL_MODE_VECTOR;
    else
        s = icl_fail(ICL_ERR_FORMAT, "config JSON: \"mode\" must be \"token\" or \"vector\"");
    struct { const char *key; int *field; } fields[] = {
        {"n_layer", &c.n_layer}, {"d_model", &c.d_model}, {"n_head", &c.n_head},
        {"d_ff", &c.d_ff}, {"ctx", &c.ctx}, {"vocab_size", &c.vocab_size},
        {"tie_embeddings", &c.tie_embeddings}, {"d_in", &c.d_in}, {"d_out", &c.d_out},
    };
    for (size_t i = 0; s == ICL_OK && i < sizeof fields / sizeof fields[0]; i++)
        s = json_int(root, fields[i].key, fields[i].field);
    /* Optional: checkpoints written before the field existed used 0.02. */
    const cJSON *init_std = cJSON_GetObjectItemCaseSensitive(root, "init_std");
    if (s == ICL_OK && init_std && !(cJSON_IsNumber(init_std) && fabs(init_std->valuedouble) <= FLT_MAX))
        s = icl_fail(ICL_ERR_FORMAT, "config JSON: \"init_std\" is not a float32 number");
    c.init_std = init_std && s == ICL_OK ? (float)init_std->valuedouble : 0.02f;
    cJSON_Delete(root);
    if (s == ICL_OK)
        s = icl_config_validate(&c);
    if (s == ICL_OK)
        *cfg = c;
    return s;
}
