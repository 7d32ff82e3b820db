/* Backend selection: the one place that knows which backends this build has. */
#include <string.h>
#include "backend.h"
#include "error.h"

icl_status icl_backend_parse(const char *name, icl_backend_kind *out) {
    if (!name || !out)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_backend_parse: NULL argument");
    if (strcmp(name, "cpu") == 0)
        *out = ICL_BACKEND_CPU;
    else if (strcmp(name, "cuda") == 0)
        *out = ICL_BACKEND_CUDA;
    else
        return icl_fail(ICL_ERR_INVALID_ARG, "unknown backend \"%s\" (expected \"cpu\" or \"cuda\")", name);
    return ICL_OK;
}

const char *icl_backend_name(icl_backend_kind kind) {
    return kind == ICL_BACKEND_CPU ? "cpu" : kind == ICL_BACKEND_CUDA ? "cuda" : "unknown";
}

int icl_backend_available(icl_backend_kind kind) {
    if (kind == ICL_BACKEND_CPU)
        return 1;
#ifdef ICL_WITH_CUDA
    if (kind == ICL_BACKEND_CUDA)
        return icl_backend_cuda_device_count() > 0;
#endif
    return 0;
}

icl_status icl_backend_create(icl_backend **out, icl_backend_kind kind) {
    if (!out)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_backend_create: out is NULL");
    *out = NULL;
    switch (kind) {
    case ICL_BACKEND_CPU:
        return icl_backend_cpu_create(out);
    case ICL_BACKEND_CUDA:
#ifdef ICL_WITH_CUDA
        return icl_backend_cuda_create(out);
#else
        return icl_fail(ICL_ERR_BACKEND, "CUDA backend requested, but this libicl was built without CUDA "
                                         "(rebuild with nvcc available and CUDA=1)");
#endif
    }
    return icl_fail(ICL_ERR_INVALID_ARG, "icl_backend_create: unknown backend kind %d", (int)kind);
}

void icl_backend_destroy(icl_backend *be) {
    if (be)
        be->ops->destroy(be);
}
