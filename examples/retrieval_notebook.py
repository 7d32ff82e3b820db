# %% [markdown]
# # Retrieval from Python: train, superpose, patch
#
# A notebook-style script (cells marked `# %%`; Jupyter/VS Code run them one by
# one, `python3 examples/retrieval_notebook.py` runs them all, in about a
# minute on two cores). It trains a small retrieval model (ret_i: answer the
# i-th symbol of the query string), then asks two questions of it:
#
# 1. superposition: on prompts whose examples mix ret_1 and ret_2, does the
#    probability of each task's answer follow the mixture's proportions?
# 2. patching: does the mean residual at the query separator of ret_1 prompts
#    (a task vector) make zero-shot prompts answer as ret_1 does?
#
# Needs libicl built (`make`) or installed; matplotlib is optional (plots are
# skipped without it). STEPS=n and OUT=dir override the defaults below.
# A few hundred steps leave retrieval near its loss plateau (it escapes after
# about 2000 steps, docs/tasks.md, Results), so the effects below are weak;
# MODEL=out/demo/model/model.safetensors (after `make demo`) skips training
# and runs the same cells on the demo's trained model.

# %%
import os
import sys

# Threads sleep at OpenMP barriers instead of spinning: far faster on a busy machine.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python"))  # the uninstalled package
import numpy as np

import libicl
from libicl import probes

STEPS = int(os.environ.get("STEPS", "600"))
OUT = Path(os.environ.get("OUT", "out/retrieval_notebook"))
OUT.mkdir(parents=True, exist_ok=True)
t0 = time.monotonic()

MODEL = os.environ.get("MODEL")
family = libicl.TaskFamily(libicl.read_meta(MODEL, "user.task") if MODEL else "retrieval:A=8,L=4,tasks=3,n=6")
print(family.spec, "| tasks:", family.task_names)
print(family.sample(1, seed=1).texts[0])

# %% [markdown]
# ## Train
# Three layers, d_model 64. The first two thirds of the steps use prompts of
# two examples, which gets retrieval off its loss plateau far sooner
# (docs/tasks.md, Results); the callback keeps the loss curve.

# %%
if MODEL:
    model, hist = libicl.Model.load(MODEL), None
else:
    model = libicl.Model.for_family(family, seed=1, n_layer=3, d_model=64, n_head=4)
    opt = libicl.Optimizer(model, lr=2e-3, total_steps=STEPS, warmup_steps=STEPS // 10)
    grad_norms = []
    hist = libicl.train(model, opt, family, steps=STEPS, batch_size=32, seed=1, short_prompts=(2, STEPS * 2 // 3),
                        callback=lambda st: grad_norms.append(st.grad_norm))
    model.save(OUT / "model.safetensors", optimizer=opt, meta={"user.task": family.spec})
    print("loss %.3f -> %.3f (mean of the last 10 steps)" % (hist["loss"][0], hist["loss"][-10:].mean()))
acc = probes.evaluate(model, family, prompts_per_task=50)
print("query accuracy with %d examples: %s" % (acc["metric"].shape[1] - 1, ", ".join(
    "%s %.2f" % (n, a) for n, a in zip(family.task_names, acc["metric"][:, -1]))))

# %% [markdown]
# ## Superposition
# P(answer of ret_1) and P(answer of ret_2) on mixed prompts, as the share
# lambda of ret_1's examples goes from 0 to 1 (the same queries for every
# lambda: the probe draws prompt i from child stream i).

# %%
lambdas = np.linspace(0, 1, 7)
sup = np.array([probes.superposition(model, family, {"ret_1": l, "ret_2": 1 - l}, n_prompts=60, n_examples=6,
                                     solved=0)["stats"]["mean"] for l in lambdas])
for l, (p1, p2) in zip(lambdas, sup):
    print("lambda %.2f  P(ret_1) %.3f  P(ret_2) %.3f  other %.3f" % (l, p1, p2, 1 - p1 - p2))

# %% [markdown]
# ## Patching a task vector
# The mean resid_post at the query separator of 6-shot ret_1 prompts, written
# (a Python hook) into zero-shot prompts at each layer: how often does the
# model then give ret_1's answer to their query?

# %%
demos = family.sample(64, n_examples=6, tasks="ret_1", seed=2)
_, cache = model.run_with_cache(demos, names=["resid_post"])
zero = family.sample(64, n_examples=0, tasks="ret_2", seed=3)
ret1_answers = zero.answers_of("ret_1")  # (B, 1): what ret_1 answers to each query
base = probes.answer_probs(model, zero, ret1_answers)[:, 0].mean()
patched = []
for l in range(model.config.n_layer):
    name = "blocks.%d.hook_resid_post" % l
    vec = cache[name][np.arange(demos.B), demos.query_pos].mean(axis=0)

    def patch(x, hook, vec=vec):
        x[np.arange(zero.B), zero.query_pos] = vec
    logits = model.run_with_hooks(zero, [(name, patch)])
    q = logits[np.arange(zero.B), zero.query_pos]
    p = np.exp(q - q.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    patched.append(p[np.arange(zero.B), ret1_answers[:, 0]].mean())
    print("vector at %s: P(ret_1's answer) %.3f (unpatched %.3f)" % (name, patched[-1], base))

# %% [markdown]
# ## Plots (matplotlib, if installed)

# %%
try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    plt = None
    print("matplotlib not installed: plots skipped")
if plt is not None:
    fig, ax = plt.subplots(1, 3, figsize=(13, 3.5))
    if hist is not None:
        ax[0].plot(hist["step"], hist["loss"])
    ax[0].set(xlabel="step", ylabel="loss", title="training")
    ax[1].plot(lambdas, sup[:, 0], "o-", label="ret_1")
    ax[1].plot(lambdas, sup[:, 1], "s-", label="ret_2")
    ax[1].plot([0, 1], [0, 1], "k:", lw=0.8)
    ax[1].set(xlabel="share of ret_1 examples", ylabel="P(answer)", title="superposition")
    ax[1].legend()
    ax[2].bar(range(len(patched)), patched)
    ax[2].axhline(base, color="k", ls=":")
    ax[2].set(xlabel="layer patched", ylabel="P(ret_1 answer)", title="task vector into 0-shot prompts")
    fig.tight_layout()
    fig.savefig(OUT / "retrieval_notebook.png", dpi=100)
    print("wrote", OUT / "retrieval_notebook.png")
print("done in %.0f s" % (time.monotonic() - t0))
