#!/usr/bin/env python3
"""PyTorch eager baseline for `icl bench`, on the CPU or a CUDA GPU.

The same rows as examples/icl_bench.c: tiny, small and medium (random tokens),
retrieval (the demo's model: 3 layers, d 64, 4 heads, V 19, T 81, B 32) and han
(8 layers, d 64, 4 heads, vector mode d_in 9 / d_out 1, T 26, B 64); the same
models (pre-LN GPT, learned positions over a context of max(T, 128) for the task
rows, tied head in token mode, read-in/read-out linears in vector mode, tanh
GELU, causal attention); the same step in FP32 (forward, weighted
cross-entropy or MSE, backward, global-norm clip 1.0, AdamW lr 1e-3, betas
0.9/0.99, weight decay 0.01 on matrices), reading the loss back every step as
icl_train_step does; the same timing (two warm-up steps, then --seconds or
exactly --steps steps). Random data of the rows' shapes: the cost of a step does
not depend on the values. Each row runs in its own process, so its peak
resident memory (getrusage ru_maxrss) is its own. Prints rows of the icl bench
table (`params` must match icl's).

    python3 scripts/bench_pytorch.py [--device cpu|cuda] [--threads 2]
                                     [--config NAME|all] [--seconds 3] [--steps N]

On Debian, PyTorch comes from `apt-get install python3-torch` (for /usr/bin/python3).
"""
import argparse
import math
import os
import resource
import subprocess
import sys
import time

# name: (layers, d_model, heads, batch, mode, vocab or d_in, positions, context)
ROWS = {
    "tiny": (2, 64, 4, 32, "token", 32, 64, 64),
    "small": (4, 128, 4, 32, "token", 64, 128, 128),
    "medium": (6, 256, 8, 32, "token", 64, 128, 128),
    "retrieval": (3, 64, 4, 32, "token", 19, 81, 128),
    "han": (8, 64, 4, 64, "vector", 9, 26, 128),
}


def build(torch, row):
    nn, F = torch.nn, torch.nn.functional
    layers, d, heads, _, mode, width, _, ctx = row
    sdpa = getattr(F, "scaled_dot_product_attention", None)

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1 = nn.LayerNorm(d)
            self.qkv = nn.Linear(d, 3 * d)
            self.proj = nn.Linear(d, d)
            self.ln2 = nn.LayerNorm(d)
            self.fc = nn.Linear(d, 4 * d)
            self.fcproj = nn.Linear(4 * d, d)
            self.register_buffer("causal", torch.ones(ctx, ctx, dtype=torch.bool).tril(), persistent=False)

        def attend(self, q, k, v):
            if sdpa is not None:
                return sdpa(q, k, v, is_causal=True)
            T = q.shape[2]
            s = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(q.shape[-1]))
            s = s.masked_fill(~self.causal[:T, :T], float("-inf"))
            return torch.softmax(s, dim=-1) @ v

        def forward(self, x):
            B, T, C = x.shape
            q, k, v = self.qkv(self.ln1(x)).split(C, dim=2)
            q, k, v = (t.view(B, T, heads, C // heads).transpose(1, 2) for t in (q, k, v))
            a = self.attend(q, k, v)
            x = x + self.proj(a.transpose(1, 2).reshape(B, T, C))
            return x + self.fcproj(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.read = nn.Embedding(width, d) if mode == "token" else nn.Linear(width, d)
            self.pos = nn.Embedding(ctx, d)
            self.blocks = nn.ModuleList(Block() for _ in range(layers))
            self.lnf = nn.LayerNorm(d)
            self.out = None if mode == "token" else nn.Linear(d, 1)

        def forward(self, inputs, targets, weights):
            T = inputs.shape[1]
            x = self.read(inputs) + self.pos(torch.arange(T, device=inputs.device))
            for b in self.blocks:
                x = b(x)
            x = self.lnf(x)
            if mode == "token":
                logits = x @ self.read.weight.t()  # tied head
                losses = F.cross_entropy(logits.view(-1, width), targets.view(-1), reduction="none")
            else:
                losses = (self.out(x) - targets).pow(2).mean(dim=-1).view(-1)
            return (losses * weights.view(-1)).sum() / weights.sum()

    return GPT(), sdpa is not None


def flops_per_token(model, row):
    """icl bench's count: 6 per matrix-product weight, plus 12 L T C for attention."""
    layers, d, _, _, _, _, T, _ = row
    # in token mode read.weight is the embedding, counted once: as the tied head's product
    w = sum(p.numel() for n, p in model.named_parameters() if p.dim() == 2 and not n.startswith("pos."))
    return 6.0 * w + 12.0 * layers * T * d


def run_row(name, args):
    """One row, in this process: print its table line."""
    import torch

    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    else:
        torch.backends.cuda.matmul.allow_tf32 = False  # FP32 products, as the cuBLAS calls of libicl
        torch.backends.cudnn.allow_tf32 = False
    row = ROWS[name]
    _, _, _, B, mode, width, T, _ = row
    torch.manual_seed(1)
    model, _ = build(torch, row)
    model = model.to(args.device)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.99), eps=1e-8)
    if mode == "token":
        inputs = torch.randint(0, width, (B, T), device=args.device)
        targets = torch.randint(0, width, (B, T), device=args.device)
    else:
        inputs = torch.randn(B, T, width, device=args.device)
        targets = torch.randn(B, T, 1, device=args.device)
    weights = torch.ones(B, T, device=args.device)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = model(inputs, targets, weights)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.item()

    def sync():
        if args.device == "cuda":
            torch.cuda.synchronize()

    for _ in range(2):
        step()
    sync()
    steps, t0 = 0, time.perf_counter()
    while (steps < args.steps) if args.steps > 0 else (time.perf_counter() - t0 < args.seconds or steps < 3):
        loss = step()
        steps += 1
    sync()
    dt = time.perf_counter() - t0
    if not math.isfinite(loss):
        raise SystemExit(f"{name}: loss is {loss}")
    # inference: the forward pass alone (with the loss), as icl bench's last column
    with torch.no_grad():
        passes, t1 = 0, time.perf_counter()
        while (passes < args.steps) if args.steps > 0 else (time.perf_counter() - t1 < args.seconds or passes < 3):
            model(inputs, targets, weights).item()
            passes += 1
        sync()
        dt_fwd = time.perf_counter() - t1
    params = sum(p.numel() for p in model.parameters())
    tok_s = B * T * steps / dt
    gflops = tok_s * flops_per_token(model, row) / 1e9
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(f"| {name:<9} | torch | {params:9d} | {B:2d} | {T:3d} | {1e3 * dt / steps:8.1f} | {tok_s:10.0f} "
          f"| {gflops:7.1f} |      - | {rss_mb:11.1f} | {B * T * passes / dt_fwd:12.0f} |", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", choices=["cpu", "cuda"], default=None, help="default: cuda if available, else cpu")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads (torch.set_num_threads) [2]")
    ap.add_argument("--config", default="all", choices=["all"] + list(ROWS))
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--steps", type=int, default=0, help="time exactly this many steps instead of --seconds")
    ap.add_argument("--row", help=argparse.SUPPRESS)  # internal: run one row in this process
    args = ap.parse_args()
    if args.row:
        run_row(args.row, args)
        return
    import torch

    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench_pytorch.py: --device cuda, but PyTorch sees no CUDA device")
    where = torch.cuda.get_device_name() if args.device == "cuda" else f"the CPU, {args.threads} threads"
    attention = "scaled_dot_product_attention" if hasattr(torch.nn.functional, "scaled_dot_product_attention") \
        else "matmul + masked softmax"
    print(f"PyTorch {torch.__version__} eager on {where} (attention: {attention})\n")
    print("| config    | back  | params    | B  | T   | step ms  | tokens/s   | GFLOP/s | % peak | peak RSS MB "
          "| fwd tokens/s |")
    print("|-----------|-------|-----------|----|-----|----------|------------|---------|--------|-------------"
          "|--------------|",
          flush=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads)) if args.device == "cpu" else None
    for name in ROWS if args.config == "all" else [args.config]:
        cmd = [sys.executable, os.path.abspath(__file__), "--row", name, "--device", args.device,
               "--threads", str(args.threads), "--seconds", str(args.seconds), "--steps", str(args.steps)]
        if subprocess.call(cmd, env=env) != 0:
            raise SystemExit(f"bench_pytorch.py: row {name} failed")


if __name__ == "__main__":
    main()
