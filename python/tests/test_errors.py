"""Every bad argument becomes a libicl.Error carrying libicl's status and
message; nothing crashes; closed handles refuse to be used."""
import numpy as np
import pytest

import libicl
from libicl import Error, Intervention


def status(excinfo):
    return excinfo.value.status


def test_library_errors_carry_status_and_message(tmp_path):
    with pytest.raises(Error) as e:
        libicl.TaskFamily("no_such_family")
    assert status(e) == libicl.ERR_INVALID_ARG and "unknown family" in str(e.value)
    assert "unknown family" in libicl.last_error()
    with pytest.raises(Error) as e:
        libicl.TaskFamily("retrieval:L=20,A=8")
    assert status(e) == libicl.ERR_CONFIG
    with pytest.raises(Error) as e:
        libicl.Model.load(tmp_path / "missing.safetensors")
    assert status(e) == libicl.ERR_IO and e.value.status_name == "ICL_ERR_IO"
    (tmp_path / "junk.safetensors").write_bytes(b"\x05\x00\x00\x00\x00\x00\x00\x00{}")
    with pytest.raises(Error) as e:
        libicl.Model.load(tmp_path / "junk.safetensors")
    assert status(e) == libicl.ERR_FORMAT
    with pytest.raises(Error) as e:
        libicl.Model(libicl.ModelConfig(d_model=30, n_head=4))
    assert status(e) == libicl.ERR_CONFIG and "n_head" in str(e.value)
    with pytest.raises(Error):
        libicl.ModelConfig(no_field=1)
    with pytest.raises(Error):
        libicl.Model(backend="tpu")


def test_bad_arrays_are_refused(model, family):
    b = family.sample(2, seed=1)
    cases = [
        (lambda: model.forward(b.tokens.astype(np.float32)), libicl.ERR_INVALID_ARG),  # dtype
        (lambda: model.forward(b.tokens[0]), libicl.ERR_SHAPE),                         # ndim
        (lambda: model.forward(np.zeros((2, 0), np.int32)), libicl.ERR_SHAPE),          # empty
        (lambda: model.forward(np.full((1, 4), 99, np.int32)), libicl.ERR_INVALID_ARG),  # token >= V (C)
        (lambda: model.forward(np.zeros((1, 500), np.int32)), libicl.ERR_SHAPE),        # T > ctx (C)
        (lambda: model.forward(b.tokens, targets=b.targets[:, :3]), libicl.ERR_SHAPE),
        (lambda: model.forward(b.tokens, loss_weights=np.ones((2, 3))), libicl.ERR_SHAPE),
        (lambda: model.forward(np.array([["a", "b"]])), libicl.ERR_INVALID_ARG),
        (lambda: model.forward(np.full((1, 2), 2**40)), libicl.ERR_INVALID_ARG),
        (lambda: model.forward(inputs=np.zeros((1, 2, 3))), libicl.ERR_INVALID_ARG),    # inputs to a token model
        (lambda: model.set_params(np.zeros(5)), libicl.ERR_SHAPE),
        (lambda: model.forward(b, targets=b.targets), libicl.ERR_INVALID_ARG),
        (lambda: model.forward_with(b, [Intervention("blocks.0.hook_resid_post", "set", vector=np.zeros(7))]),
         libicl.ERR_SHAPE),
        (lambda: model.forward_with(b, [Intervention("resid_post", "zero")]), libicl.ERR_INVALID_ARG),
        (lambda: model.forward_with(b, [Intervention("blocks.0.attn.hook_z", "zero", head=9)]),
         libicl.ERR_INVALID_ARG),
        (lambda: model.forward_with(b, [Intervention("blocks.0.hook_resid_post", "resample",
                                                     source=np.zeros((2, 3, 32)))]), libicl.ERR_SHAPE),
        (lambda: model.forward_with(b, ["not an intervention"]), libicl.ERR_INVALID_ARG),
        (lambda: model.capture(b, [("blocks.0.hook_resid_post", -1, "no_role")]), libicl.ERR_INVALID_ARG),
        (lambda: family.sample(0), libicl.ERR_INVALID_ARG),
        (lambda: family.sample(2, tasks=["ret_9"]), libicl.ERR_INVALID_ARG),
        (lambda: family.sample(2, loss="most"), libicl.ERR_INVALID_ARG),
        (lambda: family.sample(2, seed=-1), libicl.ERR_INVALID_ARG),
        (lambda: family.sample_mixed(2, {"ret_1": 0.5, "ret_2": 0.7}), libicl.ERR_INVALID_ARG),
        (lambda: libicl.probes.answer_probs(model, b, np.zeros((2, 1, 3), np.int32)), libicl.ERR_SHAPE),
        (lambda: libicl.probes.answer_probs(model, b.tokens), libicl.ERR_INVALID_ARG),
        (lambda: libicl.probes.superposition(model, family, {"ret_1": 1.0}), libicl.ERR_INVALID_ARG),
        (lambda: libicl.probes.decodability(model, family, bogus=1), libicl.ERR_INVALID_ARG),
        (lambda: libicl.probes.linear(model, family, "colour"), libicl.ERR_INVALID_ARG),
        (lambda: libicl.probes.head_ablation(model, b, 5, 0), libicl.ERR_INVALID_ARG),
        (lambda: libicl.Optimizer(model, lr=-1.0), libicl.ERR_CONFIG),
    ]
    for i, (fn, want) in enumerate(cases):
        with pytest.raises(Error) as e:
            fn()
        assert status(e) == want, "case %d: %s" % (i, e.value)
        assert e.value.message, "case %d has no message" % i
    # the model is unharmed
    assert model.forward(b).shape == (2, b.T, family.vocab_size)


def test_use_after_close_raises(ckpt, family):
    m = libicl.Model.load(ckpt)
    opt = libicl.Optimizer(m)
    lens = libicl.probes.Lens(m)
    b = family.sample(2, seed=1)
    m.close()
    m.close()  # twice is fine
    for fn in (lambda: m.forward(b), lambda: m.params(), lambda: opt.step(b), lambda: lens.levels,
               lambda: m.run_with_cache(b), lambda: opt.step_count):
        with pytest.raises(Error) as e:
            fn()
        assert status(e) == libicl.ERR_STATE
    opt.close()
    b.close()
    with pytest.raises(Error) as e:
        libicl.Model.load(ckpt).forward(b)
    assert status(e) == libicl.ERR_STATE
    family.close()
    with pytest.raises(Error) as e:
        family.sample(1)
    assert status(e) == libicl.ERR_STATE


def test_io_errors(model, tmp_path):
    with pytest.raises(Error) as e:
        model.save(tmp_path / "no" / "dir" / "m.safetensors")
    assert status(e) == libicl.ERR_IO
    with pytest.raises(Error) as e:
        model.save(tmp_path / "m.safetensors", meta={"task": "x"})
    assert status(e) == libicl.ERR_INVALID_ARG and "user." in str(e.value)
    with pytest.raises(Error) as e:
        libicl.read_meta(tmp_path / "none.safetensors", "user.task")
    assert status(e) == libicl.ERR_IO
    with pytest.raises(Error):
        model.save("bad\0name")
