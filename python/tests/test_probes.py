"""The probes' results as numpy arrays, on the small test model."""
import numpy as np
import pytest

import libicl
from libicl import probes


def test_answer_probs_match_the_softmax(model, family):
    b = family.sample(4, seed=1)
    p = probes.answer_probs(model, b)
    soft = model.probs(b.tokens)
    want = soft[np.arange(4), b.query_pos, b.answers[:, 0]]
    assert p.shape == (4, 1)
    assert np.allclose(p[:, 0], want, rtol=1e-5, atol=1e-7), np.abs(p[:, 0] - want).max()


def test_logit_lens_last_level_is_the_output(model, family):
    b = family.sample(4, seed=2)
    cand = np.stack([np.full((4, 1), t) for t in range(3, 7)], axis=1)  # (B, 4 candidates, 1)
    lens = probes.logit_lens(model, b, cand)
    out = probes.answer_probs(model, b, cand)
    assert lens.shape == (model.config.n_layer + 1, 4, 4)
    assert np.allclose(lens[-1], out, rtol=1e-4, atol=1e-6), np.abs(lens[-1] - out).max()
    assert ((lens >= 0) & (lens <= 1)).all()
    # the lens at the last level applied to the last residual gives the model's own distribution
    _, cache = model.run_with_cache(b, names=["blocks.1.hook_resid_post"])
    with probes.Lens(model) as L:
        h = cache["blocks.1.hook_resid_post"][np.arange(4), b.query_pos]
        mine = L.apply(h)
    soft = model.probs(b.tokens)[np.arange(4), b.query_pos]
    assert mine.shape == (4, family.vocab_size)
    assert np.allclose(mine, soft, rtol=1e-4, atol=1e-6), np.abs(mine - soft).max()


def test_head_ablation_matches_a_zeroed_head(model, family):
    b = family.sample(4, seed=3)
    r = probes.head_ablation(model, b, layer=1, head=3)
    iv = libicl.Intervention("blocks.1.attn.hook_z", "zero", head=3)
    want = probes.answer_probs(model, b, interventions=[iv])[:, 0]
    assert np.allclose(r["probs"], want, rtol=1e-12), np.abs(r["probs"] - want).max()
    m = probes.head_ablation(model, b, layer=0, head=0, mode="mean", mean_batches=[family.sample(8, seed=4)])
    assert m["probs"].shape == (4,) and m["correct"].dtype == bool


def test_superposition(model, family):
    r = probes.superposition(model, family, {"ret_1": 0.5, "ret_2": 0.5}, n_prompts=6, n_examples=4, lens=1)
    assert r["P"].shape == (6, 2) and list(r["counts"]) == [2, 2] and np.allclose(r["lambda"], 0.5)
    assert (r["P"].sum(axis=1) <= 1 + 1e-9).all()
    assert np.allclose(r["stats"]["mean"], r["P"].mean(axis=0))
    assert r["lens_P"].shape == (3, 6, 2) and len(r["lens_stats"]) == 3
    assert 0 <= r["stats"]["r"] <= 2


def test_task_vectors_and_function_vectors(model, family):
    tv = probes.task_vectors(model, family, n_prompts=4, eval_prompts=4, n_examples=2, target_examples=2, n_alpha=3,
                             batch=8)
    assert tv["vectors"].shape == (3, 3, 32) and tv["mat_p"].shape == (3, 3, 3)
    assert tv["interp"].shape == (3, 3, 3) and 1 <= tv["best_level"] <= 2
    fv = probes.function_vectors(model, family, tasks=["ret_1", "ret_2"], n_prompts=4, eval_prompts=4,
                                 n_examples=2, top_k=2, batch=8)
    assert fv["fv"].shape == (2, 32) and fv["aie"].shape == (2, 2, 4) and fv["heads"].shape == (2, 2)


def test_representation_probes(model, family):
    td = probes.decodability(model, family, prompts_per_task=8, n_examples=2, k=3, pca_dims=2)
    assert td["td"].shape == (3, 3) and td["pairwise"].shape == (3, 3) and td["pca"].shape == (3, 24, 2)
    rs = probes.rsa(model, family, prompts_per_task=6, shots=[0, 2], n_perm=20)
    assert rs["rho"].shape == (2, 2, 3) and rs["hypotheses"] == ["task", "answer"]
    assert np.isnan(rs["rho"][:, :, 0]).all()  # level 0: one token's embedding, a constant RSM
    assert ((rs["p"][..., 1:] > 0) & (rs["p"][..., 1:] <= 1)).all()
    lin = probes.linear(model, family, "task", prompts_per_task=10, n_examples=2, folds=2)
    assert lin["metric"].shape == (3,) and lin["X"].shape == (3, 30, 32)
    assert np.isnan(lin["metric"][0])  # level 0: every item the same embedding, nothing to decode
    assert ((lin["metric"][1:] >= 0) & (lin["metric"][1:] <= 1)).all()
    at = probes.attention(model, family, prompts_per_task=4, n_examples=2, batch=8)
    assert list(at) == ["0-shot", "k-shot", "mixed"]
    k = at["k-shot"]
    assert k["role"].shape == (2, 5, 9)
    assert np.allclose(k["role"].sum(axis=2), 1, atol=1e-6)


def test_evaluate_and_residuals(model, family):
    ev = probes.evaluate(model, family, prompts_per_task=4, max_examples=2)
    assert ev["metric"].shape == (3, 3)
    b = family.sample(3, seed=5)
    res = probes.residuals_at(model, b, "query_sep")
    _, cache = model.run_with_cache(b, names=["resid_post"])
    assert np.array_equal(res[2], cache["blocks.1.hook_resid_post"][np.arange(3), b.query_pos])


def test_function_vectors_per_prompt(model, family):
    fv = probes.function_vectors(model, family, tasks=["ret_2"], n_prompts=4, eval_prompts=5, n_examples=2, top_k=2,
                                 batch=2)
    assert fv["p_prompt"].shape == (1, 3, 2, 5) and fv["aie_p"].shape == (1, 2, 4, 5)
    assert np.abs(fv["p_prompt"].mean(-1) - fv["p"]).max() < 1e-12
    assert np.abs(fv["acc_prompt"].mean(-1) - fv["acc"]).max() < 1e-12
    assert np.abs((fv["aie_p"] - fv["aie_p0"][:, None, None]).mean(-1) - fv["aie"]).max() < 1e-12
    # the shuffled-label prompts regenerated from their prompt set give the same unpatched P
    b = family.prompt_set("ret_2", 5, n_examples=2, shuffle_labels=True, stream=libicl._lib.FV_STREAM_EVAL)
    assert np.array_equal(probes.answer_probs(model, b)[:, 0], fv["aie_p0"][0])
    assert np.array_equal(fv["aie_p0"], fv["p_prompt"][:, 2, 0])


def test_linear_shot_conditions(model, family):
    zero = probes.linear(model, family, "answer", prompts_per_task=8, shots=0, max_shots=2, folds=2)
    two = probes.linear(model, family, "answer", prompts_per_task=8, shots=2, max_shots=2, folds=2)
    fresh = probes.linear(model, family, "answer", prompts_per_task=8, shots=0, max_shots=2, same_queries=False,
                          folds=2)
    # answer ids are numbered by first appearance: the same queries give the same ids, other queries others
    assert np.array_equal(zero["y"], two["y"]) and not np.array_equal(zero["y"], fresh["y"])
    assert zero["pred"].shape == (3, 24, 1) and zero["folds"].shape == (24,) and set(zero["folds"]) == {0, 1}
    acc = (two["pred"][1:, :, 0] == two["y"][:, 0]).mean(1)
    assert np.allclose(acc, two["metric"][1:], atol=1e-12)
    with pytest.raises(libicl.Error):
        probes.linear(model, family, "answer", prompts_per_task=8, shots=3, max_shots=2)
    with pytest.raises(libicl.Error):
        probes.linear(model, family, "answer", prompts_per_task=8, shots=0, n_examples=2)


def test_td_from_repr_and_eval_tasks(model, family):
    lin = probes.linear(model, family, "task", prompts_per_task=8, n_examples=2, folds=2)
    mine = probes.td_from_repr(lin["X"], lin["labels"], k=3)
    td = probes.decodability(model, family, prompts_per_task=8, n_examples=2, k=3)
    assert np.array_equal(mine["td"], td["td"], equal_nan=True) and mine["best_level"] == td["best_level"]
    ev = probes.eval_tasks(model, family, prompts_per_task=6, detail=True)
    w, L, task = ev["loss_weights"].astype(float), ev["losses"].astype(float), ev["prompt_task"]
    for t in range(family.num_tasks):
        sel = task == t
        assert abs((w[sel] * L[sel]).sum() / w[sel].sum() - ev["loss"][t]) < 1e-12
        assert abs(ev["score"][sel].mean() - ev["metric"][t]) < 1e-12


def test_finetune(model, family):
    r = probes.finetune(model, family, steps=3, batch=4, prompts_per_task=6, k=3, eval_prompts=5, keep_inputs=True)
    assert r["variants"] == ["original", "first", "last"] and r["train_loss"].shape == (3, 3)
    assert np.isnan(r["final_loss"][0]) and np.allclose(r["train_loss"][1:].mean(1), r["final_loss"][1:])
    assert r["td_X"].shape == (3, 3, 18, 32) and r["eval_losses"].shape == (3, 15, r["eval_loss_weights"].shape[1])
    for v in range(3):
        mine = probes.td_from_repr(r["td_X"][v], r["td_labels"], k=3)
        assert np.array_equal(mine["td_mean"], r["td_mean"][v], equal_nan=True)
        assert np.allclose([r["eval_score"][v][r["eval_prompt_task"] == t].mean() for t in range(3)], r["metric"][v])
    with pytest.raises(libicl.Error):
        probes.finetune(model, family, steps=3, no_such_option=1)
