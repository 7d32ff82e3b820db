"""scripts/claims_stats.py, the statistics behind docs/results.md's claims table, against
hand-computed cases: correlation and its p-values, ranks with ties, and the tables of Han's
150000-step recipe over seeds (`hanlong`) on a small synthetic run folder."""
import importlib.util
import math
import re

import numpy as np
import pytest

from conftest import ROOT

spec = importlib.util.spec_from_file_location("claims_stats", ROOT / "scripts" / "claims_stats.py")
cs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cs)


def test_pearson_and_t_pvalue_hand_computed():
    # dx = (-1.5, -.5, .5, 1.5), dy = (-1.75, .25, 1.25, .25): r = 3.5 / sqrt(5 * 4.75)
    r = cs.pearson([1, 2, 3, 4], [2, 4, 5, 4])
    want = 3.5 / math.sqrt(23.75)
    print("pearson %.12f, hand %.12f" % (r, want))
    assert abs(r - want) < 1e-12
    # with 2 degrees of freedom the two-sided t p-value is exactly 1 - |r|
    p = cs.t_pvalue(r, 4)
    print("t p-value %.12f, hand %.12f" % (p, 1 - want))
    assert abs(p - (1 - want)) < 1e-9
    assert cs.t_pvalue(1.0, 10) == 0.0 and math.isnan(cs.t_pvalue(0.5, 2))


def test_rank_averages_ties():
    assert list(cs.rank([3, 1, 3, 2])) == [2.5, 0.0, 2.5, 1.0]


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def long_runs(tmp_path):
    """Two seeds of a 2-basis family, k = 0..1, with numbers chosen so every table entry is
    easy to compute by hand."""
    model_k1 = {1: (0.2, 0.4), 2: (0.5, 1.2)}  # seed -> (basis_0, basis_1) query MSE at k = 1
    for s in (1, 2):
        d = tmp_path / ("s%d" % s)
        rows = ["task,k,method,metric,value"]
        for b in (0, 1):
            for k in (0, 1):
                rows.append("basis_%d,%d,model,mse,%g" % (b, k, 2.0 if k == 0 else model_k1[s][b]))
                rows.append("basis_%d,%d,lasso,mse,%g" % (b, k, 2.0 if k == 0 else 1.0))
                rows.append("basis_%d,%d,oracle,mse,%g" % (b, k, 2.0 if k == 0 else 0.1))
        write(d / "eval200.csv", "\n".join(rows) + "\n")
        td = ["layer,task,task_id,metric,value,td_weighted"]
        for lv, base in ((0, 0.25), (1, 0.5 + 0.1 * s)):
            td.append("%d,mean,-1,td,%g,%g" % (lv, base, base))
            td += ["%d,basis_%d,%d,td,%g,%g" % (lv, b, b, base, base) for b in (0, 1)]
        write(d / "decodability" / "td.csv", "\n".join(td) + "\n")
        # the original variant has per-basis rows only, the finetuned ones a mean as well
        write(d / "finetune" / "finetune.csv", "\n".join([
            "variant,metric,task,value",
            "original,td_best,mean,0.9", "original,mse,basis_0,0.01", "original,mse,basis_1,0.03",
            "first,td_best,mean,%g" % (0.8 + 0.1 * s), "first,mse,mean,%g" % (0.02 * s),
            "last,td_best,mean,0.9", "last,mse,mean,0.05"]) + "\n")
        write(d / "task_log.csv", "\n".join([
            "step,task,loss,metric",
            "2000,basis_0,1,0.5", "2000,basis_1,1,0.2",
            "4000,basis_0,1,0.09", "4000,basis_1,1,%g" % (0.15 if s == 1 else 0.05),
            "6000,basis_0,1,0.2", "6000,basis_1,1,0.05"]) + "\n")
        diag, off = 0.02 * s - 0.01, 0.02 * s + 0.03  # dMSE of the own / another basis's vector
        write(d / "patch_add3" / "matrix.csv", "level,vector_task,prompt_task,vector_id,prompt_id,metric,value\n" +
              "".join("0,basis_%d,basis_%d,%d,%d,%s,%g\n" % (v, p, v, p, metric, value)
                      for v in (0, 1) for p in (0, 1)
                      for metric, value in (("mse", 9.0), ("dmse", diag if v == p else off))))
        pts = {1: ((0.3, 0.5), (0.9, 0.1)), 2: ((0.5, 0.3), (0.7, 0.2))}[s]
        write(d / "td_error" / "td_error.csv", "step,task,td,mse\n" + "".join(
            "5000,basis_%d,%g,%g\n" % (b, t, e) for b, (t, e) in enumerate(pts)))
        write(d / "model.safetensors", "")  # training finished
    (tmp_path / "s2x").mkdir()  # not a seed folder: ignored
    write(tmp_path / "s3" / "task_log.csv", "step,task,loss,metric\n2000,basis_0,1,0.9\n")  # still training
    return tmp_path


def line(out, pattern):
    hits = [x for x in out.splitlines() if re.match(pattern, x)]
    assert len(hits) == 1, "expected one line matching %r in:\n%s" % (pattern, out)
    return hits[0]


def numbers(text):
    return [float(x) for x in re.findall(r"[-+]?\d+\.\d+(?:e[-+]?\d+)?", text)]


def test_hanlong_tables_hand_computed(long_runs, capsys):
    cs.hanlong(str(long_runs))
    out = capsys.readouterr().out
    print(out)
    assert "seeds 1 2 (still training, left out: 3)\n" in out
    # k = 1: per-seed means over the bases 0.3 and 0.85 -> 0.575 ± 0.55/sqrt(2); Lasso 1 everywhere
    sd = 0.55 / math.sqrt(2)
    got = numbers(line(out, r"\s+1\s+0\.5750"))
    want = [0.575, sd, 1.0, 0.0, 0.1, 0.0, 0.575, sd]
    print("k = 1 row", got, "hand", want)
    assert np.allclose(got, want, atol=6e-4)
    assert "seed 1: mean over bases at or above Lasso at k = none; (basis, k) cells at or above: none" in out
    assert "seed 2: mean over bases at or above Lasso at k = none; (basis, k) cells at or above: " \
           "basis_1 k=1 (1.2000 vs 1.0000)" in out
    # TD at level 1: 0.6 and 0.7 -> 0.65 ± 0.0707
    assert np.allclose(numbers(line(out, r"\s+1\s+0\.650"))[:2], [0.65, 0.1 / math.sqrt(2)], atol=6e-4)
    # finetune: original MSE averages its bases (0.02), first 0.02 and 0.04, TD best 0.9 and 1.0
    assert np.allclose(numbers(line(out, r"original\s")), [0.02, 0.0, 0.9, 0.0], atol=6e-5)
    assert np.allclose(numbers(line(out, r"first\s")), [0.03, 0.02 / math.sqrt(2), 0.95, 0.1 / math.sqrt(2)],
                       atol=6e-5)
    # patching at level 0: diagonal 0.01, 0.03 -> 0.02 ± 0.0141; off 0.05, 0.07 -> 0.06 ± 0.0141
    assert np.allclose(numbers(line(out, r"\s+0\s+\+0\.0200")), [0.02, 0.02 / math.sqrt(2), 0.06, 0.02 / math.sqrt(2)],
                       atol=6e-5)
    # first evaluation below 0.1: basis_0 at 4000 in both; basis_1 at 6000 (seed 1), 4000 (seed 2)
    assert "seed 1: basis_0 4000, basis_1 6000; spread 2000 steps" in out
    assert "seed 2: basis_0 4000, basis_1 4000; spread 0 steps" in out
    # TD against error, pooled over both seeds' four points
    td, mse = [0.3, 0.9, 0.5, 0.7], [0.5, 0.1, 0.3, 0.2]
    r = np.corrcoef(td, mse)[0, 1]
    got = numbers(line(out, r"pooled TD vs MSE"))[0]
    print("pooled r %.3f, numpy %.6f" % (got, r))
    assert abs(got - r) < 6e-4
