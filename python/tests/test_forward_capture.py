"""`icl forward --capture` writes the activations that run_with_cache returns."""
import subprocess

import numpy as np

from conftest import run_tool


def test_forward_capture_equals_run_with_cache(icl_tool, ckpt, model, family, tmp_path):
    b = family.sample(3, seed=4)
    np.save(tmp_path / "x.npy", b.tokens.astype(np.int32))
    out = tmp_path / "y.npy"
    run_tool(icl_tool, "forward", "--model", ckpt, "--input", tmp_path / "x.npy", "--out", out,
             "--capture", "resid_post:1", "--capture", "blocks.0.attn.hook_pattern", "--capture", "head_out:1",
             "--capture", "embed")
    names = ["blocks.1.hook_resid_post", "blocks.0.attn.hook_pattern", "blocks.1.attn.hook_z", "hook_embed"]
    logits, cache = model.run_with_cache(b.tokens, names=names)
    files = ["y.resid_post.L1.npy", "y.attn_probs.L0.npy", "y.head_out.L1.npy", "y.embed.npy"]
    for name, f in zip(names, files):
        got = np.load(tmp_path / f)
        assert got.dtype == np.float32 and got.shape == cache[name].shape, (f, got.shape, cache[name].shape)
        assert np.array_equal(got, cache[name]), f
    assert np.array_equal(np.load(out), logits)
    assert not (tmp_path / "y.resid_post.L0.npy").exists()


def test_forward_capture_rejects_an_unknown_point(icl_tool, ckpt, family, tmp_path):
    np.save(tmp_path / "x.npy", family.sample(2, seed=1).tokens.astype(np.int32))
    r = subprocess.run([icl_tool, "forward", "--model", ckpt, "--input", str(tmp_path / "x.npy"), "--out",
                        str(tmp_path / "y.npy"), "--capture", "blocks.0.hook_nothing"], capture_output=True, text=True)
    assert r.returncode == 2 and "unknown point" in r.stderr
    assert not (tmp_path / "y.npy").exists()
