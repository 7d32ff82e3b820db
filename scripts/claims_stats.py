#!/usr/bin/python3
"""Statistics of docs/results.md's "Claims" experiments (scripts/reproduce.sh parts scale, han_td).

    /usr/bin/python3 scripts/claims_stats.py ksweep OUT/scale [GROUP]   # Yousefi: behaviour vs representation over k
    /usr/bin/python3 scripts/claims_stats.py han OUT/han_td             # Han: TD vs query error
    /usr/bin/python3 scripts/claims_stats.py hanlong out/han8l150       # Han's 150000-step recipe over seeds
    /usr/bin/python3 scripts/claims_stats.py scale OUT/scale            # Xiong: r and KL against model size

Each prints its tables and writes the points behind its figure (CSV, for gnuplot) into
DIR/claims/ of the sweep directory DIR it reads. Runs are the sweep's folders <task>_L<l>_d<w>_s<seed>; GROUP (default
retrieval_L3_d64) selects one size. Correlations: Pearson r and Spearman rho, each with a
two-sided p-value from a permutation test (10000 shuffles of one variable, numpy seed 0) and,
for Pearson, the t-distribution p-value (t = r sqrt((n-2)/(1-r^2)), n-2 degrees of freedom).
Needs numpy.
"""
import csv
import glob
import math
import os
import re
import sys

import numpy as np

N_PERM = 10000


def rank(x):
    """Average ranks (ties share their mean rank)."""
    x = np.asarray(x, float)
    order = np.argsort(x, kind="mergesort")
    r = np.empty(len(x))
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and x[order[j + 1]] == x[order[i]]:
            j += 1
        r[order[i:j + 1]] = (i + j) / 2.0
        i = j + 1
    return r


def pearson(x, y):
    x, y = np.asarray(x, float), np.asarray(y, float)
    dx, dy = x - x.mean(), y - y.mean()
    den = math.sqrt((dx * dx).sum() * (dy * dy).sum())
    return float((dx * dy).sum() / den) if den > 0 else float("nan")


def betacf(a, b, x):
    """Continued fraction of the incomplete beta function (Numerical Recipes)."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > 1e-300 else 1e-300)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > 1e-300 else 1e-300)
        c = 1.0 + aa / c if abs(1.0 + aa / c) > 1e-300 else 1e-300
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > 1e-300 else 1e-300)
        c = 1.0 + aa / c if abs(1.0 + aa / c) > 1e-300 else 1e-300
        de = d * c
        h *= de
        if abs(de - 1.0) < 1e-14:
            break
    return h


def betai(a, b, x):
    """Regularised incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    lbt = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log(1.0 - x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(lbt) * betacf(a, b, x) / a
    return 1.0 - math.exp(lbt) * betacf(b, a, 1.0 - x) / b


def t_pvalue(r, n):
    """Two-sided p of Pearson r under the t distribution with n - 2 degrees of freedom."""
    if n < 3 or not math.isfinite(r):
        return float("nan")
    if abs(r) >= 1.0:
        return 0.0
    df = n - 2
    t = r * math.sqrt(df / (1.0 - r * r))
    return betai(df / 2.0, 0.5, df / (df + t * t))


def perm_pvalue(x, y, stat, seed=0):
    """Two-sided permutation p: (1 + #{|stat(x, perm y)| >= |stat(x, y)|}) / (1 + N_PERM)."""
    obs = stat(x, y)
    if not math.isfinite(obs):
        return float("nan")
    rng = np.random.default_rng(seed)
    y = np.asarray(y, float)
    hits = sum(abs(stat(x, rng.permutation(y))) >= abs(obs) - 1e-12 for _ in range(N_PERM))
    return (1 + hits) / (1 + N_PERM)


def correlate(x, y):
    """n, Pearson r, its permutation and t p-values, Spearman rho, its permutation p."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    r = pearson(x, y)
    rx, ry = rank(x), rank(y)
    rho = pearson(rx, ry)
    return {"n": len(x), "pearson": r, "p_perm": perm_pvalue(x, y, pearson), "p_t": t_pvalue(r, len(x)),
            "spearman": rho, "p_perm_spearman": perm_pvalue(rx, ry, pearson)}


def show(name, c):
    print("%-44s n=%3d  Pearson r=%+.3f (perm p=%.4f, t p=%.2g)  Spearman rho=%+.3f (perm p=%.4f)" %
          (name, c["n"], c["pearson"], c["p_perm"], c["p_t"], c["spearman"], c["p_perm_spearman"]))


def msd(values):
    v = np.asarray([x for x in values if math.isfinite(x)], float)
    if len(v) == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def runs(root, group):
    """(seed, folder) of the group's finished runs."""
    out = []
    for d in sorted(glob.glob(os.path.join(root, group + "_s*"))):
        m = re.search(r"_s(\d+)$", d)
        if m and os.path.exists(os.path.join(d, "done")):
            out.append((int(m.group(1)), d))
    return out


def claims_path(root, name):
    os.makedirs(os.path.join(root, "claims"), exist_ok=True)
    return os.path.join(root, "claims", name)


def read_csv(path):
    with open(path) as fp:
        return list(csv.DictReader(fp))


def fnum(s):
    try:
        return float(s)
    except (TypeError, ValueError):
        return float("nan")


def ksweep(root, group="retrieval_L3_d64"):
    rows = []  # seed, task, k, acc, rsa, att, att0
    for seed, d in runs(root, group):
        f = os.path.join(d, "ksweep", "ksweep.csv")
        if not os.path.exists(f):
            continue
        for r in read_csv(f):
            rows.append((seed, r["task"], int(r["k"]), fnum(r["accuracy"]), fnum(r["rsa_answer"]),
                         fnum(r["attention_qs"]), fnum(r["attention_qs_0shot"])))
    seeds = sorted({r[0] for r in rows})
    tasks = sorted({r[1] for r in rows})
    ks = sorted({r[2] for r in rows})
    print("# Yousefi k-sweep, %s: seeds %s, tasks %s" % (group, seeds, " ".join(tasks)))
    print("# per k: mean over tasks within a seed, then mean ± sd over seeds")
    print("# attention at k = 0: the 0-shot condition of each k's attention run, averaged over those runs")
    by = {(r[0], r[1], r[2]): r for r in rows}
    att0 = {}
    for s in seeds:
        for t in tasks:
            v = [by[(s, t, k)][6] for k in ks if (s, t, k) in by and k > 0]
            att0[(s, t)] = float(np.nanmean(v)) if v else float("nan")
    table = claims_path(root, group + "_ksweep.csv")
    with open(table, "w") as fp:
        fp.write("k,accuracy,accuracy_sd,rsa_answer,rsa_answer_sd,attention_qs,attention_qs_sd\n")
        print("%3s %16s %16s %16s" % ("k", "accuracy", "RSA answer rho", "attention ratio"))
        for k in ks:
            cols = []
            for idx in (3, 4, 5):
                per_seed = []
                for s in seeds:
                    if idx == 5 and k == 0:
                        v = [att0[(s, t)] for t in tasks]
                    else:
                        v = [by[(s, t, k)][idx] for t in tasks if (s, t, k) in by]
                    per_seed.append(float(np.nanmean(v)) if v else float("nan"))
                cols.append(msd(per_seed))
            print("%3d %8.3f ± %5.3f %8.3f ± %5.3f %8.3f ± %5.3f" % (k, *cols[0], *cols[1], *cols[2]))
            fp.write("%d,%g,%g,%g,%g,%g,%g\n" % (k, *cols[0], *cols[1], *cols[2]))
    # pooled points over (seed, task, k >= 1): changes from 0 shots on the same queries
    pts = [(s, t, k, by[(s, t, k)][3] - by[(s, t, 0)][3], by[(s, t, k)][4] - by[(s, t, 0)][4],
            by[(s, t, k)][5] - by[(s, t, k)][6]) for (s, t, k) in sorted(by) if k > 0 and (s, t, 0) in by]
    lev = [(s, t, k, by[(s, t, k)][3], by[(s, t, k)][4], att0[(s, t)] if k == 0 else by[(s, t, k)][5])
           for (s, t, k) in sorted(by)]
    with open(claims_path(root, group + "_ksweep_points.csv"), "w") as fp:
        fp.write("seed,task,k,gain,d_rsa,d_attention\n")
        for p in pts:
            fp.write("%d,%s,%d,%g,%g,%g\n" % p)
    print("\n# correlations, points pooled over seeds and tasks")
    show("gain vs change of RSA rho (k=1..%d)" % max(ks), correlate([p[3] for p in pts], [p[4] for p in pts]))
    show("gain vs change of attention ratio (k=1..%d)" % max(ks), correlate([p[3] for p in pts], [p[5] for p in pts]))
    show("accuracy vs RSA rho (k=0..%d)" % max(ks), correlate([p[3] for p in lev], [p[4] for p in lev]))
    show("accuracy vs attention ratio (k=0..%d)" % max(ks), correlate([p[3] for p in lev], [p[5] for p in lev]))
    print("\n# per seed (tasks pooled), k = 0..%d: accuracy vs RSA rho / vs attention ratio" % max(ks))
    for s in seeds:
        sub = [p for p in lev if p[0] == s]
        show("seed %d accuracy vs RSA" % s, correlate([p[3] for p in sub], [p[4] for p in sub]))
        show("seed %d accuracy vs attention" % s, correlate([p[3] for p in sub], [p[5] for p in sub]))


def han(root):
    pts = []
    for d in sorted(glob.glob(os.path.join(root, "*s[0-9]*"))):  # <task>_L<l>_d<w>_s<seed> or s<seed>
        m = re.search(r"(?:^|_)s(\d+)$", os.path.basename(d))
        f = os.path.join(d, "td_error", "td_error.csv")
        if not m or not os.path.exists(f):
            continue
        for r in read_csv(f):
            pts.append((int(m.group(1)), int(r["step"]), r["task"], fnum(r["td"]), fnum(r["mse"])))
    print("# Han: TD (last level) vs query error (k = 12) per (seed, checkpoint, basis)")
    with open(claims_path(root, "td_error_points.csv"), "w") as fp:
        fp.write("seed,step,task,td,mse\n")
        for p in pts:
            fp.write("%d,%d,%s,%g,%g\n" % p)
    steps = sorted({p[1] for p in pts})
    print("%6s %14s %14s" % ("step", "TD", "query MSE"))
    for st in steps:
        per_seed_td, per_seed_mse = [], []
        for s in sorted({p[0] for p in pts}):
            sub = [p for p in pts if p[0] == s and p[1] == st]
            per_seed_td.append(float(np.mean([p[3] for p in sub])))
            per_seed_mse.append(float(np.mean([p[4] for p in sub])))
        print("%6d %6.3f ± %5.3f %6.3f ± %5.3f" % (st, *msd(per_seed_td), *msd(per_seed_mse)))
    show("pooled TD vs MSE", correlate([p[3] for p in pts], [p[4] for p in pts]))
    last = steps[-1] if steps else None
    sub = [p for p in pts if p[1] == last]
    show("final checkpoint only (step %s)" % last, correlate([p[3] for p in sub], [p[4] for p in sub]))
    for s in sorted({p[0] for p in pts}):
        sub = [p for p in pts if p[0] == s]
        show("seed %d" % s, correlate([p[3] for p in sub], [p[4] for p in sub]))
    # within a checkpoint: the bases' TD against their error, step effects removed (centred per seed and step)
    cx, cy = [], []
    for s in sorted({p[0] for p in pts}):
        for st in steps:
            sub = [p for p in pts if p[0] == s and p[1] == st]
            if len(sub) > 1:
                mt, me = np.mean([p[3] for p in sub]), np.mean([p[4] for p in sub])
                cx += [p[3] - mt for p in sub]
                cy += [p[4] - me for p in sub]
    show("across bases within (seed, step), centred", correlate(cx, cy))


def seed_dirs(root, finished=True):
    """(seed, folder) of root's s<seed> folders (scripts/han_long.sh's layout), by seed: those whose
    training finished (model.safetensors written), or with finished=False the others."""
    out = []
    for d in glob.glob(os.path.join(root, "s[0-9]*")):
        m = re.fullmatch(r"s(\d+)", os.path.basename(d))
        if m and os.path.exists(os.path.join(d, "model.safetensors")) == finished:
            out.append((int(m.group(1)), d))
    return sorted(out)


def hanlong(root):
    """Han's 150000-step 8-layer recipe over seeds (scripts/han_long.sh): error by k against
    Lasso, TD by depth, first vs last blocks finetuned; mean ± sd over the seeds present."""
    seeds = seed_dirs(root)
    unfinished = seed_dirs(root, finished=False)
    print("# Han's 150000-step 8-layer recipe: seeds %s%s" % (" ".join(str(s) for s, _ in seeds), "" if not unfinished
          else " (still training, left out: %s)" % " ".join(str(s) for s, _ in unfinished)))
    evals = {s: read_csv(os.path.join(d, "eval200.csv")) for s, d in seeds
             if os.path.exists(os.path.join(d, "eval200.csv"))}
    if evals:
        ks = sorted({int(r["k"]) for rows in evals.values() for r in rows})
        print("\n# query MSE by k, mean over the bases (200 prompts per basis and k); mean ± sd over %d seeds"
              % len(evals))

        def by_k(rows, method):
            return {k: float(np.mean([fnum(r["value"]) for r in rows if r["method"] == method and
                                      r["metric"] == "mse" and int(r["k"]) == k])) for k in ks}
        tab = {s: {m: by_k(rows, m) for m in ("model", "lasso", "oracle")} for s, rows in evals.items()}
        print("%3s %16s %16s %16s %16s" % ("k", "model", "lasso", "oracle", "model/lasso"))
        for k in ks:
            cols = [msd([tab[s][m][k] for s in tab]) for m in ("model", "lasso", "oracle")]
            ratio = msd([tab[s]["model"][k] / tab[s]["lasso"][k] for s in tab])
            print("%3d" % k + "".join(" %8.4f ± %5.4f" % c for c in cols) + " %8.3f ± %5.3f" % ratio)
        for s, rows in sorted(evals.items()):
            lasso = {(r["task"], r["k"]): fnum(r["value"]) for r in rows
                     if r["method"] == "lasso" and r["metric"] == "mse"}
            above = ["%s k=%s (%.4f vs %.4f)" % (r["task"], r["k"], fnum(r["value"]), lasso[r["task"], r["k"]])
                     for r in rows if r["method"] == "model" and r["metric"] == "mse" and int(r["k"]) >= 1
                     and (r["task"], r["k"]) in lasso and fnum(r["value"]) >= lasso[r["task"], r["k"]]]
            mean_above = [k for k in ks if k >= 1 and tab[s]["model"][k] >= tab[s]["lasso"][k]]
            print("seed %d: mean over bases at or above Lasso at k = %s; (basis, k) cells at or above: %s" %
                  (s, mean_above or "none", "; ".join(above) or "none"))
    tds = {s: read_csv(os.path.join(d, "decodability", "td.csv")) for s, d in seeds
           if os.path.exists(os.path.join(d, "decodability", "td.csv"))}
    if tds:
        print("\n# TD after each block (level), plain vote k = 10 / distance-weighted; mean ± sd over %d seeds"
              % len(tds))
        levels = sorted({int(r["layer"]) for rows in tds.values() for r in rows})
        tasks = sorted({r["task"] for rows in tds.values() for r in rows if r["task"] != "mean"})
        print("%5s %15s %15s   %s" % ("level", "TD mean", "weighted", "  ".join("%13s" % t for t in tasks)))
        for lv in levels:
            def td(task, col="value"):
                return msd([fnum(r[col]) for rows in tds.values() for r in rows
                            if int(r["layer"]) == lv and r["task"] == task])
            print("%5d %7.3f ± %5.3f %7.3f ± %5.3f   %s" % ((lv,) + td("mean") + td("mean", "td_weighted") + (
                "  ".join("%6.3f ± %4.3f" % td(t) for t in tasks),)))
    for name, seen, held in (("finetune", None, None),
                             ("finetune_heldout", ("basis_0", "basis_2", "basis_4", "basis_6"),
                              ("basis_1", "basis_3", "basis_5", "basis_7"))):
        fts = {s: read_csv(os.path.join(d, name, "finetune.csv")) for s, d in seeds
               if os.path.exists(os.path.join(d, name, "finetune.csv"))}
        if not fts:
            continue
        print("\n# %s: query MSE (k = 12) and best-level TD per variant; mean ± sd over %d seeds" % (name, len(fts)))
        cols = [("MSE", None)] if seen is None else [("MSE seen", seen), ("MSE held-out", held)]
        print("%-9s" % "variant" + "".join(" %17s" % c for c, _ in cols) + " %17s" % "TD best")
        points = open(claims_path(root, name + "_points.csv"), "w")
        points.write("variant,x," + ",".join("%s,%s_sd" % (c.replace(" ", "_").replace("-", "_"),
                                                           c.replace(" ", "_").replace("-", "_")) for c, _ in cols) +
                     ",td_best,td_best_sd\n")
        for x, v in enumerate(("original", "first", "last")):
            out = []
            for _, tasks in cols:
                per_seed = []
                for rows in fts.values():
                    vals = [fnum(r["value"]) for r in rows if r["variant"] == v and r["metric"] == "mse" and
                            ((tasks is None and r["task"] == "mean") or (tasks is not None and r["task"] in tasks))]
                    if tasks is None and not vals:  # the original row has no mean: average its bases
                        vals = [fnum(r["value"]) for r in rows if r["variant"] == v and r["metric"] == "mse"]
                    per_seed.append(float(np.mean(vals)) if vals else float("nan"))
                out.append(msd(per_seed))
            out.append(msd([fnum(r["value"]) for rows in fts.values() for r in rows
                            if r["variant"] == v and r["metric"] == "td_best"]))
            print("%-9s" % v + "".join(" %8.4f ± %6.4f" % c for c in out))
            points.write("%s,%d,%s\n" % (v, x, ",".join("%g,%g" % c for c in out)))
        points.close()
    patches = {s: read_csv(os.path.join(d, "patch_add3", "matrix.csv")) for s, d in seeds
               if os.path.exists(os.path.join(d, "patch_add3", "matrix.csv"))}
    if patches:
        print("\n# patching (ADD into 3-example prompts): change of the query MSE, own basis's vector (diagonal)"
              "\n# and another basis's (off the diagonal), mean over the bases; mean ± sd over %d seeds" % len(patches))
        levels = sorted({int(r["level"]) for rows in patches.values() for r in rows})
        print("%5s %17s %17s" % ("level", "diagonal", "off diagonal"))
        for lv in levels:
            def part(off):
                return msd([float(np.mean([fnum(r["value"]) for r in rows if int(r["level"]) == lv and
                                           r["metric"] == "dmse" and (r["vector_task"] != r["prompt_task"]) == off]))
                            for rows in patches.values()])
            print("%5d %+8.4f ± %6.4f %+8.4f ± %6.4f" % ((lv,) + part(False) + part(True)))
    logs = {s: read_csv(os.path.join(d, "task_log.csv")) for s, d in seeds
            if os.path.exists(os.path.join(d, "task_log.csv"))}
    if logs:
        # Fixed before seeds 2 and 3 were run: a basis counts as learned at the first evaluation
        # (every 2000 steps) where its query error falls below 0.1 (oracle at k = 12: 0.013).
        print("\n# step at which each basis's query error (training evaluation) first falls below 0.1")
        for s, rows in sorted(logs.items()):
            first = {}
            for r in sorted(rows, key=lambda r: int(r["step"])):
                if r["task"] not in first and fnum(r["metric"]) < 0.1:
                    first[r["task"]] = int(r["step"])
            tasks = sorted({r["task"] for r in rows})
            got = [first[t] for t in tasks if t in first]
            print("seed %d: %s; spread %s steps" % (s, ", ".join("%s %s" % (t, first.get(t, "never")) for t in tasks),
                                                   max(got) - min(got) if got and len(got) == len(tasks) else "-"))
    print()
    han(root)


def n_params(model):
    with open(model, "rb") as fp:
        hlen = int.from_bytes(fp.read(8), "little")
        import json
        header = json.loads(fp.read(hlen))
    total = 0
    for name, t in header.items():
        if name != "__metadata__":
            total += int(np.prod(t["shape"]))
    return total


def scale(root):
    groups = sorted({re.sub(r"_s\d+$", "", os.path.basename(d)) for d in glob.glob(os.path.join(root, "*_s*"))
                     if re.search(r"_s\d+$", d)})
    rows = []
    for g in groups:
        per = {}
        params = None
        for seed, d in runs(root, g):
            f = os.path.join(d, "superposition", "superposition.csv")
            if not os.path.exists(f):
                continue
            params = n_params(os.path.join(d, "model", "model.safetensors"))
            acc = [fnum(r["value"]) for r in read_csv(os.path.join(d, "model", "eval.csv"))
                   if r["method"] == "model" and r["metric"] == "accuracy" and r["k"] == "8"]
            per.setdefault("acc8", []).append(float(np.mean(acc)))
            seen = set()
            vals = {}
            for r in read_csv(f):
                if r["sweep"] != "uniform" or r["mixture"] in seen:
                    continue
                seen.add(r["mixture"])
                n = int(r["n_tasks"])
                vals.setdefault(("r", n), []).append(fnum(r["r"]))
                vals.setdefault(("kl", n), []).append(fnum(r["kl_raw"]))
            for key, v in vals.items():
                per.setdefault(key, []).append(float(np.mean(v)))
        if params is None:
            continue
        m = re.search(r"_L(\d+)_d(\d+)", g)
        rows.append((g, int(m.group(1)), int(m.group(2)), params, per))
    rows.sort(key=lambda r: r[3])
    print("# Xiong vs size: uniform mixtures of n tasks, mean ± sd over seeds")
    hdr = "%-22s %8s %5s %14s" % ("group", "params", "seeds", "acc k=8")
    for n in (2, 3, 4):
        hdr += " %14s %14s" % ("r n=%d" % n, "KL n=%d" % n)
    print(hdr)
    with open(claims_path(root, "scale_points.csv"), "w") as fp:
        fp.write("group,layers,width,params,seeds,acc8,acc8_sd" +
                 "".join(",r%d,r%d_sd,kl%d,kl%d_sd" % (n, n, n, n) for n in (2, 3, 4)) + "\n")
        for g, L, w, params, per in rows:
            line = "%-22s %8d %5d %6.3f ± %5.3f" % (g, params, len(per["acc8"]), *msd(per["acc8"]))
            out = "%s,%d,%d,%d,%d,%g,%g" % (g, L, w, params, len(per["acc8"]), *msd(per["acc8"]))
            for n in (2, 3, 4):
                line += " %6.3f ± %5.3f %6.3f ± %5.3f" % (*msd(per.get(("r", n), [])), *msd(per.get(("kl", n), [])))
                out += ",%g,%g,%g,%g" % (*msd(per.get(("r", n), [])), *msd(per.get(("kl", n), [])))
            print(line)
            fp.write(out + "\n")


def tv(root):
    """Per seed and mode (task-vectors = REPLACE, task-vectors-add = ADD): zero-shot accuracy without and with
    the task's vector at the best level, the vector task's answer on other tasks' prompts (override), the
    interpolation's monotonicity (Spearman of P(task_1) and of P(task_2) against alpha, per pair), and a* and
    the distance from the line of the half-and-half prompts' vector at the interpolation level."""
    import json
    res = {}
    for seed, d in runs(root, "*"):
        for mode in ("task-vectors", "task-vectors-add"):
            t = os.path.join(d, mode)
            if not os.path.exists(os.path.join(t, "task_vectors.json")):
                continue
            meta = json.load(open(os.path.join(t, "task_vectors.json")))["config"]
            best, lev = int(meta["best_level"]), int(meta["interpolation_level"])
            zs = read_csv(os.path.join(t, "zero_shot.csv"))
            base = np.mean([fnum(r["value"]) for r in zs if r["metric"] == "accuracy_base" and int(r["level"]) == best])
            withv = np.mean([fnum(r["value"]) for r in zs if r["metric"] == "accuracy" and int(r["level"]) == best])
            mat = read_csv(os.path.join(t, "matrix.csv"))
            over = np.mean([fnum(r["value"]) for r in mat if r["metric"] == "accuracy_vector_answer" and
                            int(r["level"]) == best and r["vector_task"] != r["prompt_task"]])
            interp = read_csv(os.path.join(t, "interpolation.csv"))
            mono1, mono2, span1, span2 = [], [], [], []
            for pair in sorted({(r["task_1"], r["task_2"]) for r in interp}):
                rows = [r for r in interp if (r["task_1"], r["task_2"]) == pair]
                a = [fnum(r["alpha"]) for r in rows if r["metric"] == "p_task_1"]
                p1 = [fnum(r["value"]) for r in rows if r["metric"] == "p_task_1"]
                p2 = [fnum(r["value"]) for r in rows if r["metric"] == "p_task_2"]
                mono1.append(pearson(rank(a), rank(p1)))
                mono2.append(pearson(rank(a), rank(p2)))
                span1.append(p1[-1] - p1[0])
                span2.append(p2[-1] - p2[0])
            mixed = os.path.join(t, "mixed.csv")
            astar, off = float("nan"), float("nan")
            if os.path.exists(mixed):
                mx = [r for r in read_csv(mixed) if int(r["level"]) == lev]
                astar = float(np.mean([fnum(r["alpha_star"]) for r in mx]))
                off = float(np.mean([fnum(r["off_line"]) for r in mx]))
            res.setdefault(mode, []).append({
                "seed": seed, "best": best, "base": base, "with": withv, "override": over,
                "mono1": float(np.nanmean(mono1)), "mono2": float(np.nanmean(mono2)),
                "span1": float(np.mean(span1)), "span2": float(np.mean(span2)), "astar": astar, "off": off})
    for mode, rows in res.items():
        print("# %s (%s), seeds %s, best levels %s" % (mode, "REPLACE" if mode == "task-vectors" else "ADD",
                                                     [r["seed"] for r in rows], [r["best"] for r in rows]))
        for key, label in (("base", "zero-shot accuracy without a vector"),
                           ("with", "zero-shot accuracy with its vector, best level"),
                           ("override", "other tasks' prompts: accuracy of the vector's answer"),
                           ("mono1", "Spearman(alpha, P(task_1)), mean over pairs"),
                           ("mono2", "Spearman(alpha, P(task_2)), mean over pairs"),
                           ("span1", "P(task_1) at alpha=1 minus at alpha=0"),
                           ("span2", "P(task_2) at alpha=1 minus at alpha=0"),
                           ("astar", "mixed prompts: a* at the interpolation level"),
                           ("off", "mixed prompts: distance from the line / |v1 - v2|")):
            print("%-56s %7.3f ± %5.3f" % (label, *msd([r[key] for r in rows])))


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] not in ("ksweep", "han", "hanlong", "scale", "tv"):
        sys.exit(__doc__)
    if sys.argv[1] == "ksweep":
        ksweep(sys.argv[2], *sys.argv[3:4])
    elif sys.argv[1] == "han":
        han(sys.argv[2])
    elif sys.argv[1] == "hanlong":
        hanlong(sys.argv[2])
    elif sys.argv[1] == "tv":
        tv(sys.argv[2])
    else:
        scale(sys.argv[2])
