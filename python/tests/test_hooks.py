"""Caches, Python hooks, the C capture API and the library's interventions."""
import numpy as np
import pytest

import libicl
from libicl import Intervention


def test_cache_covers_the_catalogue_and_ends_in_the_logits(model, family):
    b = family.sample(3, seed=1)
    logits, cache = model.run_with_cache(b)
    L = model.config.n_layer
    assert len(cache) == 3 + 15 * L  # hook_embed, ln_final, logits + 15 points per block
    assert np.array_equal(cache["hook_logits"], logits)
    assert cache["blocks.1.attn.hook_pattern"].shape == (3, 4, b.T, b.T)
    assert cache["blocks.0.attn.hook_z"].shape == (3, b.T, 4, 8)
    assert np.array_equal(cache["blocks.1.hook_resid_pre"], cache["blocks.0.hook_resid_post"])
    _, some = model.run_with_cache(b, names=["resid_post", "hook_embed"])
    assert sorted(some) == ["blocks.0.hook_resid_post", "blocks.1.hook_resid_post", "hook_embed"]


@pytest.mark.parametrize("name,head,shape", [("blocks.1.hook_resid_post", -1, None),
                                             ("blocks.0.attn.hook_z", 2, None),
                                             ("blocks.0.attn.hook_q", -1, None),
                                             ("blocks.1.attn.hook_pattern", 1, None)])
def test_cache_equals_the_c_capture(model, family, name, head, shape):
    b = family.sample(4, seed=2)
    _, cache = model.run_with_cache(b, names=[name])
    caps = model.capture(b, [(name, head, "all")])
    assert len(caps) == 1
    c = caps[0]
    got = cache[name]
    if head >= 0:
        got = got[:, head] if got.shape[1] != b.T else got[:, :, head]
    rec = got[c["rows"], c["positions"]].reshape(len(c["rows"]), -1)
    assert c["data"].shape == rec.shape
    assert np.array_equal(c["data"], rec)


def test_capture_by_role(model, family):
    b = family.sample(5, seed=3)
    c = model.capture(b, [("blocks.1.hook_resid_post", -1, "query_sep")])[0]
    assert list(c["rows"]) == list(range(5))
    assert np.array_equal(c["positions"], b.query_pos)


def test_head_ablation_hook_equals_the_c_intervention(model, family):
    b = family.sample(4, seed=4)
    clean = model.forward(b)

    def zero_head(z, hook):
        z[:, :, 2, :] = 0.0
    py = model.run_with_hooks(b, [("blocks.1.attn.hook_z", zero_head)])
    c = model.forward_with(b, [Intervention("blocks.1.attn.hook_z", "zero", head=2)])
    assert np.array_equal(py, c)
    assert not np.array_equal(py, clean)
    print("ablation moves the logits by up to %.4f" % np.abs(py - clean).max())
    # a hook that returns a replacement instead of writing in place
    py2 = model.run_with_hooks(b, {"blocks.1.attn.hook_z": lambda z, h: np.where(
        np.arange(4)[None, None, :, None] == 2, 0.0, z)})
    assert np.array_equal(py2, c)
    # the hook is gone afterwards
    assert np.array_equal(model.forward(b), clean)


def test_patching_a_task_vector_from_python_equals_the_library(model, family):
    src = family.sample(8, seed=5, tasks=["ret_1"])
    _, cache = model.run_with_cache(src, names=["blocks.0.hook_resid_post"])
    vec = cache["blocks.0.hook_resid_post"][np.arange(8), src.query_pos].mean(axis=0)
    dst = family.sample(4, seed=6, tasks=["ret_2"], n_examples=0)

    def patch(x, hook):
        x[np.arange(dst.B), dst.query_pos] = vec
    py = model.run_with_hooks(dst, [("blocks.0.hook_resid_post", patch)])
    iv = libicl.probes.tv_intervention(model, 1, vec)  # level 1 = resid_post of block 0
    assert np.array_equal(py, model.forward_with(dst, [iv]))
    assert np.array_equal(py, model.forward_with(dst, [Intervention("blocks.0.hook_resid_post", "set",
                                                                    positions="query_sep", vector=vec)]))


def test_hooks_compose_with_interventions_and_report_errors(model, family):
    b = family.sample(2, seed=7)
    seen = []
    out = model.run_with_hooks(b, [("blocks.0.hook_mlp_out", lambda x, h: seen.append((h.name, x.shape)))],
                               interventions=[Intervention("blocks.0.attn.hook_z", "zero", head=0)])
    assert seen == [("blocks.0.hook_mlp_out", (2, b.T, 32))]
    assert np.array_equal(out, model.forward_with(b, [Intervention("blocks.0.attn.hook_z", "zero", head=0)]))

    with pytest.raises(ZeroDivisionError):
        model.run_with_hooks(b, [("hook_embed", lambda x, h: 1 / 0)])
    with pytest.raises(libicl.Error) as e:
        model.run_with_hooks(b, [("hook_embed", lambda x, h: np.zeros(3))])
    assert e.value.status == libicl.ERR_SHAPE
    with pytest.raises(libicl.Error) as e:
        model.run_with_hooks(b, [("blocks.9.hook_resid_post", lambda x, h: None)])
    assert e.value.status == libicl.ERR_INVALID_ARG
    with pytest.raises(libicl.Error) as e:
        model.run_with_hooks(b, [("no_such_point", lambda x, h: None)])
    assert e.value.status == libicl.ERR_INVALID_ARG and "no_such_point" in str(e.value)
    # the model still works, without a hook
    assert np.array_equal(model.forward(b), model.run_with_cache(b)[0])


def test_interventions_resample_and_scale(model, family):
    b = family.sample(3, seed=8)
    _, cache = model.run_with_cache(b, names=["blocks.0.hook_attn_out"])
    src = np.ascontiguousarray(cache["blocks.0.hook_attn_out"][::-1])
    a = model.forward_with(b, [Intervention("blocks.0.hook_attn_out", "resample", source=src)])
    py = model.run_with_hooks(b, [("blocks.0.hook_attn_out", lambda x, h: src)])
    assert np.array_equal(a, py)
    s = model.forward_with(b, [Intervention("blocks.1.hook_mlp_out", "scale", alpha=0.0)])
    z = model.forward_with(b, [Intervention("blocks.1.hook_mlp_out", "zero")])
    assert np.array_equal(s, z)
