"""Task families and prompt batches, against `icl sample`."""
import json

import numpy as np
import pytest

import libicl
from conftest import TASK, run_tool


def _load(d, names):
    return {n: np.load(d / ("%s.npy" % n)) for n in names}


@pytest.mark.parametrize("spec,args", [(TASK, []), (TASK, ["--tasks", "ret_2,ret_3", "--examples", "2"]),
                                       ("linear:d=3,n=5", ["--loss", "query"]),
                                       ("bitwise", ["--pad-to", "100", "--query-unseen"])])
def test_icl_sample_equals_the_package(icl_tool, tmp_path, spec, args):
    run_tool(icl_tool, "sample", "--task", spec, "--batch", "5", "--seed", "9", "--out", tmp_path, *args)
    fam = libicl.TaskFamily(spec)
    kw = {}
    if "--tasks" in args:
        kw = {"tasks": ["ret_2", "ret_3"], "n_examples": 2}
    if "--loss" in args:
        kw["loss"] = "query"
    if "--pad-to" in args:
        kw.update(pad_to=100, query_unseen=True)
    b = fam.sample(5, seed=9, **kw)
    for name, want in b.arrays().items():
        got = np.load(tmp_path / ("%s.npy" % name))
        assert got.dtype == want.dtype and np.array_equal(got, want), name
    assert (tmp_path / "prompts.txt").read_text().splitlines() == b.texts
    assert json.loads((tmp_path / "sample.json").read_text())["config"]["task"] == fam.spec
    if "--tasks" in args:
        assert set(b.prompt_task) <= {1, 2}
    if "--pad-to" in args:
        assert b.T == 100 and (b.roles[:, -1] == 8).all()


def test_icl_sample_mixed_equals_the_package(icl_tool, tmp_path):
    run_tool(icl_tool, "sample", "--task", TASK, "--batch", "4", "--seed", "2", "--examples", "8", "--mix",
             "ret_1=0.25,ret_3=0.75", "--out", tmp_path)
    fam = libicl.TaskFamily(TASK)
    b = fam.sample_mixed(4, {"ret_1": 0.25, "ret_3": 0.75}, n_examples=8, seed=2)
    for name, want in b.arrays().items():
        assert np.array_equal(np.load(tmp_path / ("%s.npy" % name)), want), name
    assert np.array_equal(np.load(tmp_path / "mix_answers.npy"), b.mix_answers)
    assert np.array_equal(np.load(tmp_path / "mix_counts.npy"), b.mix_counts)
    assert (b.mix_counts == [2, 6]).all()  # exact proportions
    # each prompt's examples: 2 of ret_1 and 6 of ret_3, per the task ids of the example answers
    for r in range(4):
        ex = b.task_ids[r][b.roles[r] == 3]
        assert sorted(ex.tolist()) == [0, 0] + [2] * 6
    assert np.array_equal(b.answers[:, 0], b.mix_answers[:, 0, 0])


def test_icl_sample_checks_the_output_path_first(icl_tool, tmp_path):
    import subprocess
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = subprocess.run([icl_tool, "sample", "--task", "no_such_family", "--out", str(blocker / "sub")],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "cannot create directory" in r.stderr


def test_family_description_and_labels(family):
    assert family.name == "retrieval" and family.num_tasks == 3 and family.task_names == ["ret_1", "ret_2", "ret_3"]
    assert family.mode == "token" and family.answer_len == 1 and family.input_len == 4
    assert family.prompt_len(4) == 5 * (4 + 1 + 2)
    assert "retrieval" in libicl.registry()
    b = family.sample(3, seed=1, tasks="ret_2")
    assert (b.prompt_task == 1).all()
    assert (b.roles[np.arange(3), b.query_pos] == 6).all()  # query_sep
    assert np.array_equal(b.targets[np.arange(3), b.query_pos], b.answers[:, 0])
    assert b.texts[0].startswith("<bos>") and b.render(2) == b.texts[2]
    # consecutive draws from one Rng differ; the same seed repeats
    r = libicl.Rng(5, "x")
    assert not np.array_equal(family.sample(3, rng=r).tokens, family.sample(3, rng=r).tokens)
    assert np.array_equal(family.sample(3, seed=4).tokens, family.sample(3, seed=4).tokens)


def test_mix_counts_are_exact():
    assert list(libicl.mix_counts([0.25, 0.75], 8)) == [2, 6]
    assert list(libicl.mix_counts([1 / 3, 1 / 3, 1 / 3], 4)) == [2, 1, 1]
    with pytest.raises(libicl.Error) as e:
        libicl.mix_counts([0.5, 0.6], 4)
    assert e.value.status == libicl.ERR_INVALID_ARG
