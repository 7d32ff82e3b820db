"""`icl probe <name> --save-inputs`: from the exported files alone, numpy code
recomputes each probe's reported figures (docs/probes.md, "Checking a probe's
numbers"). Every recomputation here uses numpy only, never the library."""
import csv
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, TASK

TOL = 1e-6


def probe(tool, name, model, out, *args):
    r = subprocess.run([tool, "probe", name, "--model", model, "--out", out, "--save-inputs", *map(str, args)],
                       capture_output=True, text=True)
    assert r.returncode == 0, "icl probe %s failed: %s" % (name, r.stderr)
    side = json.loads((Path(out) / (name.replace("-", "_") + ".json")).read_text())
    for f in side["files"]:
        assert (Path(out) / f).exists(), f
    return side


def rows(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


def load(out, name):
    return np.load(Path(out) / "inputs" / name)


def close(a, b, what):
    assert abs(a - b) <= TOL or (np.isnan(a) and np.isnan(b)), "%s: recomputed %r, CSV %r" % (what, a, b)


@pytest.fixture(scope="module")
def tok_model(icl_tool, tmp_path_factory):
    """A 2-layer retrieval model after 200 steps: tasks half learned, so nothing is degenerate."""
    path = tmp_path_factory.mktemp("tok") / "model.safetensors"
    subprocess.run([icl_tool, "train", "--task", TASK, "--layers", "2", "--d-model", "32", "--heads", "4", "--steps",
                    "200", "--batch", "16", "--seed", "3", "--quiet", "--save", str(path)], check=True)
    return str(path)


@pytest.fixture(scope="module")
def vec_model(icl_tool, tmp_path_factory):
    """A 2-layer basis_mixture_small model after 100 steps (vector mode)."""
    path = tmp_path_factory.mktemp("vec") / "model.safetensors"
    subprocess.run([icl_tool, "train", "--task", "basis_mixture_small", "--layers", "2", "--d-model", "32", "--heads",
                    "4", "--steps", "100", "--batch", "16", "--seed", "3", "--quiet", "--save", str(path)], check=True)
    return str(path)


# ---- superposition ----

def superposition_stats(P, pK, lam):
    """P (n,K) per-prompt answer probabilities, pK (n) K-th largest probability, lam (K) actual proportions."""
    K = P.shape[1]
    with np.errstate(divide="ignore"):
        def kl(Q):
            terms = np.where(lam > 0, lam * (np.log(np.where(lam > 0, lam, 1)) - np.log(Q)), 0.0)
            return terms.sum(1).mean()
        solved = (P >= pK[:, None] - 1e-5).mean(0)
        return {"p_mean": P.mean(0), "p_sd": P.std(0, ddof=1), "sorted_mean": -np.sort(-P, 1).mean(0),
                "solved": solved, "other": np.full(K, (1 - P.sum(1)).mean()),
                "kl_raw": np.full(K, kl(P)), "kl_renorm": np.full(K, kl(P / P.sum(1, keepdims=True))),
                "r": np.full(K, solved.sum())}


def test_superposition(icl_tool, tok_model, tmp_path):
    out = str(tmp_path / "sp")
    probe(icl_tool, "superposition", tok_model, out, "--prompts", 16, "--lambdas", "0,0.25,0.5,1")
    table = rows(Path(out) / "superposition.csv")
    checked = 0
    for sweep in ("pairs", "uniform"):
        P_all = np.load(Path(out) / ("P_%s.npy" % sweep)).astype(np.float64)
        pK_all = load(out, sweep + "_pK.npy").astype(np.float64)
        lam_all = load(out, sweep + "_lambda_actual.npy").astype(np.float64)
        tasks = load(out, sweep + "_tasks.npy")
        tokens, answers = load(out, sweep + "_tokens.npy"), load(out, sweep + "_answers_all.npy")
        M, n = pK_all.shape
        assert tokens.shape[0] == M * n and answers.shape[:2] == (M, n)
        mine = [r for r in table if r["sweep"] == sweep and r["readout"] == "output"]
        order = sorted({int(r["mixture"]) for r in mine})
        assert len(order) == M
        for m, index in enumerate(order):
            K = int((tasks[m] >= 0).sum())
            st = superposition_stats(P_all[m, :, :K], pK_all[m], lam_all[m, :K])
            for j, r in enumerate(x for x in mine if int(x["mixture"]) == index):
                close(lam_all[m, j], float(r["lambda_actual"]), "lambda_actual")
                for key, v in st.items():
                    close(v[j], float(r[key]), "%s mixture %d task %d %s" % (sweep, index, j, key))
                checked += 1
        # the exported prompts hold each task's answer as the query answer of its own examples' kind
        assert (answers[:, :, 0, :] >= 0).all()
    assert checked > 20
    print("superposition: %d rows recomputed" % checked)


# ---- decodability ----

def knn_td(X, labels, n_classes, k, weighted=False):
    """Leave-one-out k-NN vote with the library's tie rule: nearest by (distance, index); the class with the most
    votes, then the smaller summed distance of its voters, then the lower class. weighted: the class with the
    largest summed 1/(distance + 1e-9), then the lower class."""
    X = X.astype(np.float64)
    d2 = ((X[:, None, :] - X[None, :, :]) ** 2).sum(-1)
    n = len(X)
    correct = np.zeros(n_classes)
    for i in range(n):
        others = [j for j in range(n) if j != i]
        near = sorted(others, key=lambda j: (d2[i, j], j))[:k]
        votes, dist, weight = np.zeros(n_classes), np.zeros(n_classes), np.zeros(n_classes)
        for j in near:
            votes[labels[j]] += 1
            dist[labels[j]] += np.sqrt(d2[i, j])
            weight[labels[j]] += 1.0 / (np.sqrt(d2[i, j]) + 1e-9)
        key = (lambda c: (-weight[c], c)) if weighted else (lambda c: (-votes[c], dist[c], c))
        best = min(set(labels[near]), key=key)
        correct[labels[i]] += best == labels[i]
    return correct / np.bincount(labels, minlength=n_classes)


@pytest.mark.parametrize("kind", ["tok", "vec"])
def test_decodability(icl_tool, tok_model, vec_model, tmp_path, kind):
    out = str(tmp_path / "td")
    side = probe(icl_tool, "decodability", tok_model if kind == "tok" else vec_model, out, "--prompts", 12, "--k", 5)
    X, labels = load(out, "X.npy"), load(out, "labels.npy")
    n_tasks = labels.max() + 1
    table = rows(Path(out) / "td.csv")
    for level in range(X.shape[0]):
        same = (X[level] == X[level][0]).all()
        k = side["config"]["k"]
        td = np.full(n_tasks, np.nan) if same else knn_td(X[level], labels, n_tasks, k)
        tdw = np.full(n_tasks, np.nan) if same else knn_td(X[level], labels, n_tasks, k, weighted=True)
        got = [float(r["value"]) for r in table if int(r["layer"]) == level]
        gotw = [float(r["td_weighted"]) for r in table if int(r["layer"]) == level]
        for t in range(n_tasks):
            close(td[t], got[t + 1], "TD level %d task %d" % (level, t))
            close(tdw[t], gotw[t + 1], "weighted TD level %d task %d" % (level, t))
        close(td.mean(), got[0], "mean TD level %d" % level)
        close(tdw.mean(), gotw[0], "mean weighted TD level %d" % level)
        sw = side["config"]["td_weighted_mean"][level]
        close(tdw.mean(), np.nan if sw is None else sw, "sidecar weighted TD level %d" % level)
    score = load(out, "score.npy")
    for t, r in enumerate(rows(Path(out) / "score.csv")):
        close(score[labels == t].mean(), float(r["value"]), "score task %d" % t)
    print("decodability %s: %d levels x %d tasks recomputed" % (kind, X.shape[0], n_tasks))


# ---- RSA ----

def avg_ranks(v):
    """Average ranks (1-based) of v, ties sharing their mean rank."""
    order = np.argsort(v, kind="stable")
    ranks = np.empty(len(v))
    sv = v[order]
    i = 0
    while i < len(v):
        j = i
        while j + 1 < len(v) and sv[j + 1] == sv[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def rsa_rho(X, H):
    """Spearman alignment of the RSM of X (standardised features, cosine) with hypothesis H, upper triangles."""
    X = X.astype(np.float64)
    sd = X.std(0)
    Z = np.where(sd > 0, (X - X.mean(0)) / np.where(sd > 0, sd, 1), 0.0)
    norm = np.linalg.norm(Z, axis=1)
    S = np.where(np.outer(norm, norm) > 0, Z @ Z.T / np.where(np.outer(norm, norm) > 0, np.outer(norm, norm), 1), 0)
    iu = np.triu_indices(len(X), 1)
    # rounding groups values that are equal up to summation order, as ties are in the library's RSM
    s, h = avg_ranks(np.round(S[iu], 10)), avg_ranks(H[iu])
    if s.std() == 0 or h.std() == 0:
        return np.nan
    return np.corrcoef(s, h)[0, 1]


@pytest.mark.parametrize("kind", ["tok", "vec"])
def test_rsa(icl_tool, tok_model, vec_model, tmp_path, kind):
    out = str(tmp_path / "rsa")
    side = probe(icl_tool, "rsa", tok_model if kind == "tok" else vec_model, out, "--prompts", 8, "--perm", 10)
    table = rows(Path(out) / "rsa.csv")
    checked = 0
    for shots in side["config"]["shots"]:
        pre = "shots%d_" % shots
        X, labels = load(out, pre + "X.npy"), load(out, pre + "labels.npy")
        hyp = {"task": (labels[:, None] == labels[None, :]).astype(float)}
        if kind == "tok":
            ids = load(out, pre + "answer_ids.npy")
            hyp["answer"] = (ids[:, None] == ids[None, :]).astype(float)
        else:
            v = load(out, pre + "answer_values.npy").astype(np.float64)
            hyp["answer"] = -np.abs(v[:, None] - v[None, :])
        for name, H in hyp.items():
            for level in range(X.shape[0]):
                r = [x for x in table if int(x["shots"]) == shots and x["hypothesis"] == name
                     and int(x["layer"]) == level]
                close(rsa_rho(X[level], H), float(r[0]["rho"]), "rho %s shots %d level %d" % (name, shots, level))
                checked += 1
        score = [x for x in rows(Path(out) / "score.csv") if int(x["shots"]) == shots]
        close(load(out, pre + "score.npy").mean(), float(score[0]["value"]), "score")
    print("rsa %s: %d rho values recomputed" % (kind, checked))


# ---- attention ----

EXAMPLE_ROLES = (1, 2, 3, 4)  # ex_input, ex_sep, ex_answer, delim
QUERY_INPUT, QUERY_ANSWER = 5, 7


def attention_stats(A, pos, roles, task_ids, tokens, relevant, n_tasks):
    """A (n,L,NH,T) attention rows at the attending position pos (n): role and task shares per (layer, head slot),
    head slot NH = the head-averaged row (float32, as the library averages it), and the task / query_source ratios."""
    n, L, NH, T = A.shape
    rows = np.concatenate([A, A.astype(np.float64).mean(2, keepdims=True).astype(np.float32)], 2).astype(np.float64)
    role, task = np.zeros((L, NH + 1, 8)), np.zeros((L, NH + 1, n_tasks))
    rel, irr, counted = {"task": 0, "query_source": 0}, {"task": 0, "query_source": 0}, {"task": 0, "query_source": 0}
    for i in range(n):
        t = pos[i] + 1
        a = rows[i, :, :, :t]
        a = a / a.sum(-1, keepdims=True)
        for r in range(8):
            role[:, :, r] += a[..., roles[i, :t] == r].sum(-1)
        ex = np.isin(roles[i, :t], EXAMPLE_ROLES)
        for k in range(n_tasks):
            task[:, :, k] += a[..., ex & (task_ids[i, :t] == k)].sum(-1)
        sets = {"task": (ex & (task_ids[i, :t] == relevant[i]), ex & (task_ids[i, :t] != relevant[i]))}
        if tokens is not None:
            qin = roles[i, :t] == QUERY_INPUT
            hit = np.isin(tokens[i, :t], tokens[i][roles[i] == QUERY_ANSWER])
            sets["query_source"] = (qin & hit, qin & ~hit)
        for name, (good, bad) in sets.items():
            if good.any() and bad.any():
                rel[name] = rel[name] + a[..., good].sum(-1)
                irr[name] = irr[name] + a[..., bad].sum(-1)
                counted[name] += 1
    ratio = {k: (rel[k] / counted[k]) / (irr[k] / counted[k]) for k in rel if counted[k]}
    return role / n, task / n, ratio


@pytest.mark.parametrize("kind", ["tok", "vec"])
def test_attention(icl_tool, tok_model, vec_model, tmp_path, kind):
    out = str(tmp_path / "att")
    probe(icl_tool, "attention", tok_model if kind == "tok" else vec_model, out, "--prompts", 6)
    table = rows(Path(out) / "attention.csv")
    role_names = ["bos", "ex_input", "ex_sep", "ex_answer", "delim", "query_input", "query_sep", "query_answer", "pad"]
    checked = 0
    for cond, pre in (("0-shot", "zero_shot_"), ("k-shot", "k_shot_"), ("mixed", "mixed_")):
        A = load(out, pre + "attention.npy")
        roles, task_ids = load(out, pre + "roles.npy"), load(out, pre + "task_ids.npy")
        tokens = load(out, pre + "tokens.npy") if kind == "tok" else None
        mine = {(int(r["layer"]), int(r["head"]), r["kind"], r["name"]): float(r["value"])
                for r in table if r["condition"] == cond}
        n_tasks = len({k[3] for k in mine if k[2] == "task"})
        role, task, ratio = attention_stats(A, load(out, pre + "from_pos.npy"), roles, task_ids, tokens,
                                            load(out, pre + "relevant_task.npy"), n_tasks)
        L, NH = A.shape[1], A.shape[2]
        task_names = [k[3] for k in mine if k[2] == "task" and k[0] == 0 and k[1] == 0]
        for l in range(L):
            for h in range(NH + 1):
                head = -1 if h == NH else h
                for r in range(8):
                    close(role[l, h, r], mine[(l, head, "role", role_names[r])], "%s role %d" % (cond, r))
                for k, name in enumerate(task_names):
                    close(task[l, h, k], mine[(l, head, "task", name)], "%s task %s" % (cond, name))
                for name, v in ratio.items():
                    close(v[l, h], mine[(l, head, "ratio", name)], "%s ratio %s" % (cond, name))
                checked += 1
        close(load(out, pre + "score.npy").mean(), mine[(-1, -1, "score", "accuracy" if kind == "tok" else "mse")],
              "score")
    print("attention %s: %d (layer, head) cells recomputed" % (kind, checked))


# ---- task vectors ----

@pytest.mark.parametrize("kind", ["tok", "vec"])
def test_task_vectors(icl_tool, tok_model, vec_model, tmp_path, kind):
    out = str(tmp_path / "tv")
    side = probe(icl_tool, "task-vectors", tok_model if kind == "tok" else vec_model, out, "--prompts", 8,
                 "--eval-prompts", 4)
    X, labels = load(out, "demo_X.npy"), load(out, "demo_labels.npy")
    V = np.load(Path(out) / "vectors.npy")
    means = np.stack([X[:, labels == t].astype(np.float64).mean(1) for t in range(V.shape[0])])
    err = np.abs(means - V).max()
    assert err <= TOL, "task vectors: mean of the exported residuals differs by %g" % err
    roles = load(out, "demo_roles.npy")
    assert ((roles == (6 if kind == "tok" else 5)).sum(1) == 1).all()  # one query position per prompt
    if kind == "tok":
        # the best level: highest mean zero-shot accuracy over tasks (then P), levels 1..L
        zs = rows(Path(out) / "zero_shot.csv")
        L1 = V.shape[1]
        acc = np.array([np.mean([float(r["value"]) for r in zs if r["metric"] == "accuracy" and int(r["level"]) == l])
                        for l in range(L1)])
        p = np.array([np.mean([float(r["value"]) for r in zs if r["metric"] == "p" and int(r["level"]) == l])
                      for l in range(L1)])
        best = max(range(1, L1), key=lambda l: (acc[l], p[l], -l))
        assert best == side["config"]["best_level"], (acc, p, side["config"]["best_level"])
    print("task-vectors %s: vectors recomputed to %g" % (kind, err))


# ---- linear ----

def linear_metric(y, pred, logistic):
    """Accuracy mean(pred == y), or the mean over outputs with var(y) > 0 of the pooled held-out R^2."""
    if np.isnan(pred).all():
        return np.nan
    if logistic:
        return (pred[:, 0] == y[:, 0]).mean()
    y, pred = y.astype(np.float64), pred.astype(np.float64)
    ss_tot = ((y - y.mean(0)) ** 2).sum(0)
    r2 = 1 - ((y - pred) ** 2).sum(0)[ss_tot > 0] / ss_tot[ss_tot > 0]
    return r2.mean() if len(r2) else np.nan


@pytest.mark.parametrize("kind", ["tok", "vec"])
def test_linear(icl_tool, tok_model, vec_model, tmp_path, kind):
    out = str(tmp_path / "lin")
    side = probe(icl_tool, "linear", tok_model if kind == "tok" else vec_model, out, "--prompts", 10,
                 "--shots", "0,2", "--folds", 4)
    table = rows(Path(out) / "linear.csv")
    checked = 0
    for shots in side["config"]["shots"]:
        pre = "shots%d_" % shots
        X, folds = load(out, pre + "X.npy"), load(out, pre + "folds.npy")
        n = X.shape[1]
        sizes = np.bincount(folds)
        assert folds.shape == (n,) and len(sizes) == side["config"]["folds"] and sizes.max() - sizes.min() <= 1
        for target in side["config"]["targets"].split(","):
            y, pred = load(out, pre + target + "_y.npy"), load(out, pre + target + "_pred.npy")
            assert y.shape[0] == n and pred.shape == (X.shape[0],) + y.shape
            if target == "task":
                assert (y[:, 0] == load(out, pre + "prompt_task.npy")).all()
            mine = [r for r in table if int(r["shots"]) == shots and r["target"] == target]
            logistic = mine[0]["probe"] == "logistic"
            for level in range(X.shape[0]):
                # a level whose items are all the same vector has nothing to decode
                assert np.isnan(pred[level]).all() == (X[level] == X[level][0]).all()
                got = [float(r["value"]) for r in mine if int(r["layer"]) == level and r["metric"] != "chance"]
                close(linear_metric(y, pred[level], logistic), got[0], "%s shots %d level %d" % (target, shots, level))
                checked += 1
            if logistic:
                chance = np.bincount(y[:, 0].astype(int)).max() / n
                close(chance, float([r for r in mine if r["metric"] == "chance"][0]["value"]), "chance")
    print("linear %s: %d (target, level) metrics recomputed" % (kind, checked))


# ---- logit lens ----

def test_logit_lens(icl_tool, tok_model, tmp_path):
    out = str(tmp_path / "ll")
    side = probe(icl_tool, "logit-lens", tok_model, out, "--prompts", 12)
    P = np.load(Path(out) / "lens_P.npy").astype(np.float64)  # (configs, levels, prompts, tasks)
    table = rows(Path(out) / "logit_lens.csv")
    C, L1, n, K = P.shape
    assert C == K + side["config"]["mixed"]
    checked = 0
    for c in range(C):
        mine = table[c * L1 * K:(c + 1) * L1 * K]  # config-major, then level, then task
        answers, tokens = load(out, "config%d_answers_all.npy" % c), load(out, "config%d_tokens.npy" % c)
        assert answers.shape[:2] == (n, K) and tokens.shape[0] == n
        # every task's answer to the query; the prompt's own answer slot holds the first task's
        assert (answers[:, 0, :] == load(out, "config%d_answers.npy" % c)).all()
        assert (answers >= 0).all()
        for l in range(L1):
            for j in range(K):
                r = mine[l * K + j]
                assert int(r["level"]) == l and int(r["n_prompts"]) == n
                close(P[c, l, :, j].mean(), float(r["p_mean"]), "config %d level %d task %d p_mean" % (c, l, j))
                close(P[c, l, :, j].std(ddof=1), float(r["p_sd"]), "config %d level %d task %d p_sd" % (c, l, j))
                checked += 1
    print("logit-lens: %d (config, level, task) cells recomputed" % checked)


# ---- head ablation ----

@pytest.mark.parametrize("kind", ["tok", "vec"])
def test_head_ablation(icl_tool, tok_model, vec_model, tmp_path, kind):
    out = str(tmp_path / "ha")
    probe(icl_tool, "head-ablation", tok_model if kind == "tok" else vec_model, out, "--prompts", 5, "--batch", 3)
    bv, bc = load(out, "base_value.npy").astype(np.float64), load(out, "base_correct.npy").astype(np.float64)
    av, ac = load(out, "ablated_value.npy").astype(np.float64), load(out, "ablated_correct.npy").astype(np.float64)
    M, L, NH, K, n = av.shape
    assert bv.shape == (K, n)
    modes = ["zero", "mean"][:M]
    table = rows(Path(out) / "head_ablation.csv")
    checked = 0
    for r in table:
        mi, l, h, t = modes.index(r["mode"]), int(r["layer"]), int(r["head"]), checked % K  # task-minor rows
        assert int(r["n_prompts"]) == n
        if kind == "tok":
            got = {"p": (bv[t].mean(), av[mi, l, h, t].mean()), "acc": (bc[t].mean(), ac[mi, l, h, t].mean())}
        else:
            got = {"mse": (bv[t].mean(), av[mi, l, h, t].mean())}
        for name, (base, abl) in got.items():
            close(base, float(r[name + "_base"]), "%s base %s" % (name, r["task"]))
            close(abl, float(r[name + "_ablated"]), "%s mode %s L%d H%d %s" % (name, r["mode"], l, h, r["task"]))
            close(abl - base, float(r["delta_" + name]), "delta %s" % name)
        checked += 1
    assert checked == M * L * NH * K
    delta = np.load(Path(out) / ("delta_p.npy" if kind == "tok" else "delta_mse.npy")).astype(np.float64)
    err = np.abs(av.mean(-1) - bv.mean(-1)[None, None, None] - delta).max()
    assert err <= TOL, err
    for t in range(K):  # every task is selected: task t's prompts are single-task prompts of task t
        assert (load(out, "task%d_prompt_task.npy" % t) == t).all()
    print("head-ablation %s: %d rows recomputed" % (kind, checked))


# ---- function vectors ----

def test_function_vectors(icl_tool, tok_model, tmp_path):
    out = str(tmp_path / "fv")
    side = probe(icl_tool, "function-vectors", tok_model, out, "--prompts", 6, "--eval-prompts", 5, "--batch", 4)
    HM = np.load(Path(out) / "head_means.npy")
    K, L, NH, HS = HM.shape
    # the mean head outputs: per-task means of the clean prompts' head outputs at the query separator
    Z, lab = load(out, "mean_head_out.npy").astype(np.float64), load(out, "mean_labels.npy")
    assert Z.shape == (K * side["config"]["prompts"], L, NH, HS)
    assert ((load(out, "mean_roles.npy") == 6).sum(1) == 1).all()  # one query separator per prompt
    worst = np.abs(np.stack([Z[lab == t].mean(0) for t in range(K)]) - HM).max()
    assert worst <= TOL, "head means: the exported head outputs average to values %g away" % worst
    # AIE of task t, head (l, h): mean over its shuffled-label prompts of P patched - P corrupted
    patched, corrupted = load(out, "aie_p_patched.npy").astype(np.float64), load(out, "aie_p_corrupted.npy")
    n = corrupted.shape[1]
    aie = (patched - corrupted.astype(np.float64)[:, None, None, :]).mean(-1)
    aie_mean = aie.mean(0).ravel()
    table = rows(Path(out) / "aie.csv")
    assert len(table) == (K + 1) * L * NH
    for i, r in enumerate(table):
        t, j = i // (L * NH) - 1, i % (L * NH)
        assert (int(r["layer"]), int(r["head"])) == divmod(j, NH) and (r["task"] == "mean") == (t < 0)
        want = aie_mean[j] if t < 0 else aie[t].ravel()[j]
        worst = max(worst, abs(want - float(r["aie"])))
        close(want, float(r["aie"]), "AIE task %d head %d" % (t, j))
    # rank 1 = largest mean AIE, ties to the lower layer, then head: the CSV's order sorts the recomputed means
    rank = np.array([int(r["rank"]) for r in table[:L * NH]])
    assert sorted(rank) == list(range(1, L * NH + 1))
    by_rank = np.argsort(rank)
    v = aie_mean[by_rank]
    for a in range(L * NH - 1):
        assert v[a] >= v[a + 1] - TOL and (v[a] != v[a + 1] or by_rank[a] < by_rank[a + 1]), (a, v)
    heads = np.load(Path(out) / "fv_heads.npy")
    top_k = side["config"]["top_k"]
    assert heads.tolist() == [list(divmod(j, NH)) for j in by_rank[:top_k]]
    assert side["config"]["fv_heads_layer_head"] == heads.ravel().tolist()
    # the function vector: the top heads' mean outputs through their slice of W_O
    W = load(out, "proj_w.npy").astype(np.float64)
    fv = np.stack([sum(W[l][:, h * HS:(h + 1) * HS] @ HM[t, l, h].astype(np.float64) for l, h in heads)
                   for t in range(K)])
    err = np.abs(fv - np.load(Path(out) / "fv.npy")).max()
    assert err <= TOL, "function vectors: recomputed %g away" % err
    worst = max(worst, err)
    # accuracy and P per task, condition (clean, zero_shot, shuffled) and without / with the FV
    P, hit = load(out, "eval_p.npy").astype(np.float64), load(out, "eval_correct.npy").astype(np.float64)
    assert P.shape == (K, 3, 2, n) and set(np.unique(hit)) <= {0.0, 1.0}
    assert (P[:, 2, 0] == corrupted).all()  # the AIE's corrupted prompts are the unpatched shuffled ones
    conditions = ["clean", "zero_shot", "shuffled"]
    ev = rows(Path(out) / "fv_eval.csv")
    assert len(ev) == K * 3 * 2 * 2
    for r in ev:
        c, w = conditions.index(r["condition"]), int(r["fv"])
        t = [x["task"] for x in ev[::12]].index(r["task"])
        want = (P if r["metric"] == "p" else hit)[t, c, w].mean()
        worst = max(worst, abs(want - float(r["value"])))
        close(want, float(r["value"]), "%s %s fv=%d %s" % (r["task"], r["condition"], w, r["metric"]))
    # the exported prompts: the shuffled ones are the clean ones with their example answers permuted
    clean, shuf = load(out, "clean_tokens.npy"), load(out, "shuffled_tokens.npy")
    roles = load(out, "clean_roles.npy")
    assert clean.shape == shuf.shape == (K * n, clean.shape[1]) and (load(out, "shuffled_roles.npy") == roles).all()
    ex = roles == 3
    assert (clean[~ex] == shuf[~ex]).all()
    assert all(sorted(clean[i][ex[i]]) == sorted(shuf[i][ex[i]]) for i in range(K * n))
    assert (load(out, "zero_shot_roles.npy") != 3).all()
    print("function-vectors: head means, AIE, ranks, FV and %d fv_eval rows recomputed; max difference %.3g"
          % (len(ev), worst))
    assert worst <= TOL


# ---- finetune ----

def td_levels(X, labels, k):
    """Mean TD over tasks at every level, NaN where every item is the same vector."""
    n_classes = labels.max() + 1
    return np.array([np.nan if (X[l] == X[l][0]).all() else knn_td(X[l], labels, n_classes, k).mean()
                     for l in range(X.shape[0])])


@pytest.mark.parametrize("kind", ["tok", "vec"])
def test_finetune(icl_tool, tok_model, vec_model, tmp_path, kind):
    out = str(tmp_path / "ft")
    steps = 12
    side = probe(icl_tool, "finetune", tok_model if kind == "tok" else vec_model, out, "--steps", steps, "--batch", 4,
                 "--prompts", 8, "--eval-prompts", 5, "--k", 3)
    k, labels = side["config"]["k"], load(out, "td_labels.npy")
    assert (labels == load(out, "td_prompt_task.npy")).all()  # every task of the family, task-major
    weights, losses = load(out, "eval_loss_weights.npy").astype(np.float64), load(out, "eval_losses.npy")
    score, roles, task = load(out, "eval_score.npy").astype(np.float64), load(out, "eval_roles.npy"), \
        load(out, "eval_prompt_task.npy")
    train = load(out, "train_loss.npy").astype(np.float64)
    assert losses.shape == (3,) + weights.shape and score.shape == (3, len(task)) and train.shape == (3, steps)
    ft, layers = rows(Path(out) / "finetune.csv"), rows(Path(out) / "td_layers.csv")
    metric_name = "accuracy" if kind == "tok" else "mse"
    worst, checked = 0.0, 0
    for v, variant in enumerate(["original", "first", "last"]):
        got = {(r["metric"], r["task"]): float(r["value"]) for r in ft if r["variant"] == variant}
        want = {}
        td = td_levels(load(out, "td_%s_X.npy" % variant), labels, k)
        for r in (r for r in layers if r["variant"] == variant):
            close(td[int(r["layer"])], float(r["td"]), "%s TD level %s" % (variant, r["layer"]))
            checked += 1
        best = int(np.nanargmax(td))  # the lowest level on ties
        want["td_best", "mean"], want["best_layer", "mean"] = td[best], best
        want["final_train_loss", "mean"] = train[v, -min(10, steps):].mean()  # NaN for the original
        L = losses[v].astype(np.float64)
        if kind == "vec":  # the query squared error is the loss at x_q
            assert (score[v] == L[roles == 5]).all()
        for t in range(task.max() + 1):
            sel = task == t
            name = [r["task"] for r in ft if r["variant"] == variant and r["metric"] == "loss"][t]
            want["loss", name] = (weights[sel] * L[sel]).sum() / weights[sel].sum()
            want[metric_name, name] = score[v, sel].mean()
        names = [x for m, x in want if m == "loss"]
        want["loss", "mean"] = np.mean([want["loss", x] for x in names])
        want[metric_name, "mean"] = np.mean([want[metric_name, x] for x in names])
        assert set(want) == set(got), set(want) ^ set(got)
        for key, value in want.items():
            if not np.isnan(value):
                worst = max(worst, abs(value - got[key]))
            close(value, got[key], "%s %s" % (variant, key))
            checked += 1
    print("finetune %s: %d figures recomputed; max difference %.3g" % (kind, checked, worst))
