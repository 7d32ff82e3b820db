#include "testutil.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
#include "icl/model.h"

void tu_fill_uniform(float *x, size_t n, float scale, icl_rng *r) {
    for (size_t i = 0; i < n; i++)
        x[i] = (2.0f * icl_rng_uniform(r) - 1.0f) * scale;
}

void tu_fill_tokens(int32_t *x, size_t n, int n_values, icl_rng *r) {
    for (size_t i = 0; i < n; i++)
        x[i] = (int32_t)icl_rng_below(r, (uint32_t)n_values);
}

double tu_compare(const char *label, const float *got, const float *want, size_t n, double atol, double rtol) {
    double worst = 0.0, worst_abs = 0.0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)want[i]);
        double ratio = d / (atol + rtol * fabs((double)want[i]));
        if (!(ratio <= worst)) { /* also catches NaN */
            worst = isnan(ratio) ? INFINITY : ratio;
            worst_abs = d;
            at = i;
        }
    }
    if (n > 0)
        printf("  %-44s max abs err %.3g at %zu (got %.7g, want %.7g), %.1f%% of tolerance\n", label, worst_abs, at,
               (double)got[at], (double)want[at], 100.0 * worst);
    return worst;
}

int tu_run(Suite *s) {
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}

float *tu_floats(size_t n) {
    float *p = calloc(n ? n : 1, sizeof *p);
    ck_assert_ptr_nonnull(p);
    return p;
}

int32_t *tu_ints(size_t n) {
    int32_t *p = calloc(n ? n : 1, sizeof *p);
    ck_assert_ptr_nonnull(p);
    return p;
}

const char *tu_cuda_unavailable_reason(void) {
#ifndef ICL_WITH_CUDA
    return "this libicl was built without CUDA";
#else
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        return "could not fork a process to look for a CUDA device";
    if (pid == 0)
        _exit(icl_backend_available(ICL_BACKEND_CUDA) ? 0 : 1);
    int status = 0;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
        return "the process looking for a CUDA device failed";
    return WEXITSTATUS(status) == 0 ? NULL : "the CUDA runtime reports no usable device";
#endif
}
