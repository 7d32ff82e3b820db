/* icl_npy_read on arbitrary bytes: either ICL_OK with an array whose shape
 * matches numel, or an error; never a crash or an out-of-bounds read. */
#define _GNU_SOURCE
#include <stdlib.h>
#include "fuzz_input.h"
#include "icl/npy.h"

static volatile uint32_t sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    icl_array a = {0};
    if (icl_npy_read(fuzz_input_path(data, size), &a) != ICL_OK) return 0;
    size_t numel = 1;
    for (int d = 0; d < a.ndim; d++) numel *= a.shape[d];
    if (a.ndim < 0 || a.ndim > ICL_NPY_MAX_DIM || numel != a.numel) abort();
    /* Touch every element so a short buffer shows up under ASan. */
    uint32_t sum = 0;
    for (size_t i = 0; i < a.numel; i++) sum += ((const uint32_t *)a.data)[i];
    sink = sum;
    icl_array_free(&a);
    return 0;
}
