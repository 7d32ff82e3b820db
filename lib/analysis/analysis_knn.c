/* Task decodability: leave-one-out k-nearest-neighbour majority vote
 * (Han et al.), over all classes and restricted to pairs of classes, and the
 * distance-weighted vote that breaks the plain vote's ties. */
#include <math.h>
#include <stdlib.h>
#include "analysis_internal.h"
#include "error.h"
#include "icl/analysis.h"

typedef struct {
    double dist2;
    int idx;
} neighbour;

/* Work buffers for one query point. */
typedef struct {
    double *dist2;     /* (n) squared distances from the query point */
    neighbour *near;   /* (k) current nearest, by (dist2, index) */
    int *votes;        /* (n_classes) */
    double *vote_dist; /* (n_classes) summed distances of each class's voters */
    double *weight;    /* (n_classes) summed 1/(distance + ICL_KNN_WEIGHT_EPS) of each class's voters */
} knn_work;

static void work_free(knn_work *w) {
    free(w->dist2);
    free(w->near);
    free(w->votes);
    free(w->vote_dist);
    free(w->weight);
}

static icl_status work_alloc(knn_work *w, int n, int k, int n_classes) {
    w->dist2 = malloc((size_t)n * sizeof *w->dist2);
    w->near = malloc((size_t)k * sizeof *w->near);
    w->votes = calloc((size_t)n_classes, sizeof *w->votes);
    w->vote_dist = calloc((size_t)n_classes, sizeof *w->vote_dist);
    w->weight = calloc((size_t)n_classes, sizeof *w->weight);
    if (!w->dist2 || !w->near || !w->votes || !w->vote_dist || !w->weight) {
        work_free(w);
        return icl_fail(ICL_ERR_NOMEM, "k-NN: out of memory for %d points", n);
    }
    return ICL_OK;
}

// X (n,d): squared distances from point i to every point.
static void distances_from(const float *X, int n, int d, int i, double *dist2) {
    const float *xi = X + (size_t)i * d;
    for (int j = 0; j < n; j++) {
        const float *xj = X + (size_t)j * d;
        double s = 0.0;
        for (int c = 0; c < d; c++) {
            double diff = (double)xi[c] - (double)xj[c];
            s += diff * diff;
        }
        dist2[j] = s;
    }
}

/* Label predicted for point `self` by its k nearest other points among those
 * whose label is class_a or class_b (class_b < 0: any label). Candidates are
 * scanned by increasing index and a newcomer only displaces a strictly
 * farther neighbour, so equal distances keep the lower index. weighted: the
 * class with the largest summed 1/(distance + eps) wins (the lower label on
 * exactly equal sums); else the plain vote with its tie rules. */
static int vote(knn_work *w, const int32_t *labels, int n, int self, int k, int class_a, int class_b, int weighted) {
    int filled = 0;
    for (int j = 0; j < n; j++) {
        if (j == self || (class_b >= 0 && labels[j] != class_a && labels[j] != class_b))
            continue;
        double d2 = w->dist2[j];
        if (filled == k && !(d2 < w->near[k - 1].dist2))
            continue;
        int pos = filled < k ? filled++ : k - 1;
        while (pos > 0 && d2 < w->near[pos - 1].dist2) {
            w->near[pos] = w->near[pos - 1];
            pos--;
        }
        w->near[pos] = (neighbour){d2, j};
    }
    for (int m = 0; m < filled; m++) {
        int c = labels[w->near[m].idx];
        w->votes[c]++;
        w->vote_dist[c] += sqrt(w->near[m].dist2);
        w->weight[c] += 1.0 / (sqrt(w->near[m].dist2) + ICL_KNN_WEIGHT_EPS);
    }
    int best = -1;
    for (int m = 0; m < filled; m++) {
        int c = labels[w->near[m].idx];
        if (weighted) {
            if (best < 0 || w->weight[c] > w->weight[best] || (w->weight[c] == w->weight[best] && c < best))
                best = c;
        } else if (best < 0 || w->votes[c] > w->votes[best] ||
            (w->votes[c] == w->votes[best] &&
             (w->vote_dist[c] < w->vote_dist[best] || (w->vote_dist[c] == w->vote_dist[best] && c < best))))
            best = c;
    }
    for (int m = 0; m < filled; m++) {
        int c = labels[w->near[m].idx];
        w->votes[c] = 0;
        w->vote_dist[c] = 0.0;
        w->weight[c] = 0.0;
    }
    return best;
}

static icl_status check_common(const char *fn, const float *X, const int32_t *labels, int n, int d, int n_classes,
                               int k, int *count) {
    ICL_TRY(icl_need_ptr(fn, "X", X));
    ICL_TRY(icl_need_ptr(fn, "labels", labels));
    ICL_TRY(icl_need_min(fn, "n", n, 2));
    ICL_TRY(icl_need_min(fn, "d", d, 1));
    ICL_TRY(icl_need_min(fn, "n_classes", n_classes, 1));
    if (k < 1 || k >= n)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: k = %d must be in [1, n-1] = [1, %d]", fn, k, n - 1);
    ICL_TRY(icl_check_labels(fn, labels, n, n_classes));
    ICL_TRY(icl_check_finite_f(fn, "X", X, (size_t)n * d));
    for (int c = 0; c < n_classes; c++)
        count[c] = 0;
    for (int i = 0; i < n; i++)
        count[labels[i]]++;
    for (int c = 0; c < n_classes; c++)
        if (count[c] == 0)
            return icl_fail(ICL_ERR_INVALID_ARG, "%s: class %d has no points", fn, c);
    return ICL_OK;
}

static icl_status knn_decodability(const char *fn, int weighted, const float *X, const int32_t *labels, int n, int d,
                                   int n_classes, int k, double *per_class, double *mean, int32_t *pred) {
    ICL_TRY(icl_need_ptr(fn, "per_class", per_class));
    if (n_classes < 1)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: n_classes = %d, must be >= 1", fn, n_classes);
    int *count = malloc((size_t)n_classes * sizeof *count);
    int *correct = calloc((size_t)n_classes, sizeof *correct);
    knn_work w = {0};
    icl_status st = !count || !correct ? icl_fail(ICL_ERR_NOMEM, "%s: out of memory", fn) : ICL_OK;
    if (st == ICL_OK)
        st = check_common(fn, X, labels, n, d, n_classes, k, count);
    if (st == ICL_OK)
        st = work_alloc(&w, n, k, n_classes);
    if (st == ICL_OK) {
        for (int i = 0; i < n; i++) {
            distances_from(X, n, d, i, w.dist2);
            int p = vote(&w, labels, n, i, k, -1, -1, weighted);
            correct[labels[i]] += p == labels[i];
            if (pred)
                pred[i] = p;
        }
        double sum = 0.0;
        for (int c = 0; c < n_classes; c++) {
            per_class[c] = (double)correct[c] / count[c];
            sum += per_class[c];
        }
        if (mean)
            *mean = sum / n_classes;
        work_free(&w);
    }
    free(count);
    free(correct);
    return st;
}

icl_status icl_knn_decodability(const float *X, const int32_t *labels, int n, int d, int n_classes, int k,
                                double *per_class, double *mean, int32_t *pred) {
    return knn_decodability("icl_knn_decodability", 0, X, labels, n, d, n_classes, k, per_class, mean, pred);
}

icl_status icl_knn_decodability_weighted(const float *X, const int32_t *labels, int n, int d, int n_classes, int k,
                                         double *per_class, double *mean, int32_t *pred) {
    return knn_decodability("icl_knn_decodability_weighted", 1, X, labels, n, d, n_classes, k, per_class, mean, pred);
}

icl_status icl_knn_pairwise(const float *X, const int32_t *labels, int n, int d, int n_classes, int k, double *td) {
    static const char fn[] = "icl_knn_pairwise";
    ICL_TRY(icl_need_ptr(fn, "td", td));
    if (n_classes < 1)
        return icl_fail(ICL_ERR_INVALID_ARG, "%s: n_classes = %d, must be >= 1", fn, n_classes);
    size_t cc = (size_t)n_classes * n_classes;
    int *count = malloc((size_t)n_classes * sizeof *count);
    int *correct = calloc(cc, sizeof *correct); /* correct[a][b]: points of a right against b */
    knn_work w = {0};
    icl_status st = !count || !correct ? icl_fail(ICL_ERR_NOMEM, "%s: out of memory", fn) : ICL_OK;
    if (st == ICL_OK)
        st = check_common(fn, X, labels, n, d, n_classes, k, count);
    for (int a = 0; st == ICL_OK && a < n_classes; a++)
        for (int b = a + 1; b < n_classes; b++)
            if (count[a] + count[b] - 1 < k) {
                st = icl_fail(ICL_ERR_INVALID_ARG, "%s: classes %d and %d have %d points together, k = %d needs %d",
                              fn, a, b, count[a] + count[b], k, k + 1);
                break;
            }
    if (st == ICL_OK)
        st = work_alloc(&w, n, k, n_classes);
    if (st == ICL_OK) {
        for (int i = 0; i < n; i++) {
            int a = labels[i];
            distances_from(X, n, d, i, w.dist2);
            for (int b = 0; b < n_classes; b++)
                if (b != a)
                    correct[(size_t)a * n_classes + b] += vote(&w, labels, n, i, k, a, b, 0) == a;
        }
        for (int a = 0; a < n_classes; a++)
            for (int b = 0; b < n_classes; b++)
                td[(size_t)a * n_classes + b] =
                    a == b ? 1.0
                           : 0.5 * ((double)correct[(size_t)a * n_classes + b] / count[a] +
                                    (double)correct[(size_t)b * n_classes + a] / count[b]);
        work_free(&w);
    }
    free(count);
    free(correct);
    return st;
}
