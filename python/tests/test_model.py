"""Models: forward against the `icl forward` tool, checkpoints, training."""
import numpy as np
import pytest

import libicl
from conftest import TASK, run_tool


def test_logits_equal_icl_forward_bit_for_bit(model, family, ckpt, icl_tool, tmp_path):
    batch = family.sample(6, seed=11)
    np.save(tmp_path / "tokens.npy", batch.tokens)
    run_tool(icl_tool, "forward", "--model", ckpt, "--input", tmp_path / "tokens.npy", "--out", tmp_path / "out.npy")
    want = np.load(tmp_path / "out.npy")
    got = model.forward(batch.tokens)
    assert got.dtype == np.float32 and got.shape == want.shape == (6, batch.T, family.vocab_size)
    assert np.array_equal(got, want), "max |diff| %g" % np.abs(got - want).max()
    # the PromptBatch path and an int64, non-contiguous copy of the tokens give the same bits
    assert np.array_equal(model.forward(batch), want)
    wide = np.asfortranarray(batch.tokens.astype(np.int64))
    assert np.array_equal(model.forward(wide), want)


def test_vector_mode_outputs_equal_icl_forward(icl_tool, tmp_path):
    fam = libicl.TaskFamily("linear:d=4,n=6")
    m = libicl.Model.for_family(fam, seed=2, n_layer=1, d_model=16, n_head=2)
    path = tmp_path / "v.safetensors"
    m.save(path)
    b = fam.sample(3, seed=5)
    np.save(tmp_path / "x.npy", b.inputs)
    run_tool(icl_tool, "forward", "--model", path, "--input", tmp_path / "x.npy", "--out", tmp_path / "y.npy")
    assert np.array_equal(m.forward(inputs=b.inputs), np.load(tmp_path / "y.npy"))


def test_checkpoint_round_trip(model, tmp_path):
    assert model.meta["user.task"].startswith("retrieval:")
    path = tmp_path / "copy.safetensors"
    model.save(path, meta={"user.note": "hello"})
    again = libicl.Model.load(path)
    assert np.array_equal(again.params(), model.params())
    assert libicl.read_meta(path, "user.note") == "hello"
    assert libicl.read_config(path).to_dict() == model.config.to_dict()
    sd = again.state_dict()
    assert sum(v.size for v in sd.values()) == again.num_params
    assert sd["blocks.0.attn.qkv.weight"].shape == (96, 32)


def test_training_equals_icl_train(icl_tool, tmp_path):
    """The Python loop over icl_train_loop draws the same batches as `icl
    train --task` and ends with the same parameters, bit for bit."""
    args = ["train", "--task", TASK, "--layers", "1", "--d-model", "32", "--heads", "2", "--steps", "12",
            "--batch", "4", "--seed", "7", "--quiet", "--save", tmp_path / "tool.safetensors"]
    run_tool(icl_tool, *args)
    fam = libicl.TaskFamily(TASK)
    m = libicl.Model.for_family(fam, seed=7, n_layer=1, d_model=32, n_head=2)
    opt = libicl.Optimizer(m, total_steps=12, warmup_steps=1)
    seen = []
    hist = libicl.train(m, opt, fam, steps=12, batch_size=4, seed=7, progress=False, callback=seen.append)
    assert [s.step for s in seen] == list(range(1, 13)) and hist["loss"].shape == (12,)
    want = libicl.Model.load(tmp_path / "tool.safetensors").params()
    assert np.array_equal(m.params(), want), "max |diff| %g" % np.abs(m.params() - want).max()


def test_train_callback_stops_and_exceptions_propagate(family, capsys):
    m = libicl.Model.for_family(family, seed=1, n_layer=1, d_model=16, n_head=2)
    opt = libicl.Optimizer(m)
    hist = libicl.train(m, opt, family, steps=50, batch_size=4, callback=lambda st: st.step < 3)
    assert opt.step_count == 3 and list(hist["step"]) == [1, 2, 3]
    assert "step 3/50" in capsys.readouterr().err  # the plain-text progress bar

    def boom(st):
        raise KeyError("from the callback")
    with pytest.raises(KeyError):
        libicl.train(m, opt, family, steps=10, batch_size=4, callback=boom, progress=False)

    def bad_data(step, rng):
        return "not a batch"
    with pytest.raises(libicl.Error) as e:
        libicl.train(m, opt, bad_data, steps=10, progress=False)
    assert e.value.status == libicl.ERR_INVALID_ARG


def test_step_lowers_the_loss_on_a_fixed_batch(family):
    m = libicl.Model.for_family(family, seed=4, n_layer=1, d_model=32, n_head=2)
    opt = libicl.Optimizer(m, lr=3e-3, warmup_steps=0)
    b = family.sample(16, seed=2)
    first = opt.step(b).loss
    for _ in range(20):
        last = opt.step(b).loss
    print("loss %.4f -> %.4f" % (first, last))
    assert last < first - 0.1
    _, loss = m.forward(b.tokens, targets=b.targets, loss_weights=b.loss_weights, return_loss=True)
    assert abs(loss - last) < 0.2
