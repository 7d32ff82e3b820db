#!/usr/bin/env python3
"""PyTorch eager baseline for `icl bench --backend cuda`.

The same models as examples/icl_bench.c (pre-LN GPT, learned positions, tied
head, tanh GELU, causal attention), the same random token batches, the same
step (forward, backward, global-norm clip 1.0, AdamW lr 1e-3, betas 0.9/0.99,
weight decay 0.01 on matrices) in FP32 with TF32 off, and the same timing:
two warm-up steps, then steps for --seconds, reading the loss back every
step as icl_train_step does. Prints the rows of the icl bench table.

    python3 scripts/bench_pytorch.py [--config tiny|small|medium|all] [--seconds 3]
"""
import argparse
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

# name: (layers, d_model, heads, vocab, batch, positions); d_ff = 4 d_model
CONFIGS = {
    "tiny": (2, 64, 4, 32, 32, 64),
    "small": (4, 128, 4, 64, 32, 128),
    "medium": (6, 256, 8, 64, 32, 128),
}


class Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.fc = nn.Linear(d, 4 * d)
        self.fcproj = nn.Linear(4 * d, d)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.heads, C // self.heads).transpose(1, 2) for t in (q, k, v))
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(a.transpose(1, 2).reshape(B, T, C))
        return x + self.fcproj(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, layers, d, heads, vocab, ctx):
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(ctx, d)
        self.blocks = nn.ModuleList(Block(d, heads) for _ in range(layers))
        self.lnf = nn.LayerNorm(d)

    def forward(self, tokens, targets):
        T = tokens.shape[1]
        x = self.tok(tokens) + self.pos(torch.arange(T, device=tokens.device))
        for b in self.blocks:
            x = b(x)
        logits = self.lnf(x) @ self.tok.weight.t()  # tied head
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1))


def bench(name, seconds, device):
    layers, d, heads, vocab, B, T = CONFIGS[name]
    torch.manual_seed(1)
    model = GPT(layers, d, heads, vocab, T).to(device)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.99), eps=1e-8)
    tokens = torch.randint(0, vocab, (B, T), device=device)
    targets = torch.randint(0, vocab, (B, T), device=device)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = model(tokens, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.item()

    for _ in range(2):
        step()
    torch.cuda.synchronize()
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds or steps < 3:
        loss = step()
        steps += 1
    torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    params = sum(p.numel() for p in model.parameters())
    if not math.isfinite(loss):
        raise SystemExit(f"{name}: loss is {loss}")
    print(f"| {name:<6} | torch | {params:9d} | {B:2d} | {T:3d} | {1e3 * dt / steps:8.2f} | {B * T * steps / dt:10.0f} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="all", choices=["all"] + list(CONFIGS))
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("bench_pytorch.py: no CUDA device")
    torch.backends.cuda.matmul.allow_tf32 = False  # FP32 products, as the cuBLAS calls of libicl
    torch.backends.cudnn.allow_tf32 = False
    print(f"PyTorch {torch.__version__} eager on {torch.cuda.get_device_name()}")
    print("| config | back  | params    | B  | T   | step ms  | tokens/s   |")
    print("|--------|-------|-----------|----|-----|----------|------------|")
    for name in CONFIGS if args.config == "all" else [args.config]:
        bench(name, args.seconds, "cuda")


if __name__ == "__main__":
    main()
