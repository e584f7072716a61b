#!/usr/bin/python3
"""Exports Strata's reference model suite from Debian's torch, with random weights.

For each model it writes <out>/<name>/model.onnx, the inputs as input_<k>.npy (named by the
graph input order) and torch's outputs as ref_<k>.npy. Nothing is downloaded: torchvision
architectures are built with weights=None, and the transformers are defined here.

  /usr/bin/python3 tests/models/export.py --out DIR [--models a,b] [--opset 13] [--batch 1]
"""
import argparse
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn


class BertLayer(nn.Module):
    def __init__(self, hidden, heads, ff):
        super().__init__()
        self.heads, self.dh = heads, hidden // heads
        self.q, self.k, self.v = nn.Linear(hidden, hidden), nn.Linear(hidden, hidden), nn.Linear(hidden, hidden)
        self.o = nn.Linear(hidden, hidden)
        self.ln1, self.ln2 = nn.LayerNorm(hidden, eps=1e-12), nn.LayerNorm(hidden, eps=1e-12)
        self.ff1, self.ff2 = nn.Linear(hidden, ff), nn.Linear(ff, hidden)

    def split(self, x):
        b, s, _ = x.shape
        return x.view(b, s, self.heads, self.dh).transpose(1, 2)

    def forward(self, x, mask):
        q, k, v = self.split(self.q(x)), self.split(self.k(x)), self.split(self.v(x))
        att = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.dh) + mask
        ctx = torch.matmul(torch.softmax(att, dim=-1), v).transpose(1, 2).reshape(x.shape)
        x = self.ln1(x + self.o(ctx))
        return self.ln2(x + self.ff2(nn.functional.gelu(self.ff1(x))))


class Bert(nn.Module):
    """BERT-base shape: 12 layers, hidden 768, 12 heads, FF 3072, vocab 30522."""

    def __init__(self, vocab=30522, hidden=768, layers=12, heads=12, ff=3072, max_pos=512):
        super().__init__()
        self.word, self.pos, self.token_type = nn.Embedding(vocab, hidden), nn.Embedding(max_pos, hidden), nn.Embedding(2, hidden)
        self.ln = nn.LayerNorm(hidden, eps=1e-12)
        self.layers = nn.ModuleList([BertLayer(hidden, heads, ff) for _ in range(layers)])
        self.pool = nn.Linear(hidden, hidden)

    def forward(self, input_ids, attention_mask):
        pos = torch.arange(input_ids.shape[1]).unsqueeze(0)
        x = self.ln(self.word(input_ids) + self.pos(pos) + self.token_type(torch.zeros_like(input_ids)))
        mask = (1.0 - attention_mask[:, None, None, :].to(torch.float32)) * -10000.0
        for layer in self.layers:
            x = layer(x, mask)
        return x, torch.tanh(self.pool(x[:, 0]))


class Gpt2Block(nn.Module):
    def __init__(self, hidden, heads, n_ctx):
        super().__init__()
        self.heads, self.dh = heads, hidden // heads
        self.ln1, self.ln2 = nn.LayerNorm(hidden), nn.LayerNorm(hidden)
        self.qkv, self.proj = nn.Linear(hidden, 3 * hidden), nn.Linear(hidden, hidden)
        self.fc, self.out = nn.Linear(hidden, 4 * hidden), nn.Linear(4 * hidden, hidden)
        self.register_buffer("causal", torch.tril(torch.ones(n_ctx, n_ctx, dtype=torch.bool)).view(1, 1, n_ctx, n_ctx))

    def forward(self, x):
        b, s, h = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(h, dim=2)
        q, k, v = (t.view(b, s, self.heads, self.dh).transpose(1, 2) for t in (q, k, v))
        att = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.dh)
        att = att.masked_fill(~self.causal[:, :, :s, :s], float("-inf"))
        y = torch.matmul(torch.softmax(att, dim=-1), v).transpose(1, 2).reshape(b, s, h)
        x = x + self.proj(y)
        return x + self.out(nn.functional.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class Gpt2(nn.Module):
    """GPT-2 small shape: 12 layers, hidden 768, 12 heads, vocab 50257, context 1024, tied head."""

    def __init__(self, vocab=50257, hidden=768, layers=12, heads=12, n_ctx=1024):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, hidden), nn.Embedding(n_ctx, hidden)
        self.blocks = nn.ModuleList([Gpt2Block(hidden, heads, n_ctx) for _ in range(layers)])
        self.ln = nn.LayerNorm(hidden)

    def forward(self, input_ids):
        pos = torch.arange(input_ids.shape[1]).unsqueeze(0)
        x = self.wte(input_ids) + self.wpe(pos)
        for blk in self.blocks:
            x = blk(x)
        return torch.matmul(self.ln(x), self.wte.weight.t())


class Mlp(nn.Module):
    """Tiny 3-layer MLP: measures per-call overhead, not arithmetic."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10))

    def forward(self, x):
        return self.net(x)


def build(name, batch, seq):
    g = torch.Generator().manual_seed(1)
    if name == "mlp":
        return Mlp(), (torch.randn(batch, 64, generator=g),), ["x"], ["y"], {"x": {0: "batch"}}
    if name in ("resnet50", "mobilenet_v2"):
        import torchvision
        model = getattr(torchvision.models, name)(weights=None)
        # Random weights with BatchNorm's default running statistics (mean 0, var 1) let the
        # activations vanish or explode through 50 layers, which would make any comparison
        # meaningless. Calibrate the statistics on random batches, as training would.
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = None  # cumulative average
                m.reset_running_stats()
        model.train()
        with torch.no_grad():
            for _ in range(2):
                model(torch.randn(8, 3, 224, 224, generator=g))
        return model, (torch.randn(batch, 3, 224, 224, generator=g),), ["images"], ["logits"], {"images": {0: "batch"}}
    if name == "bert":
        ids = torch.randint(0, 30522, (batch, seq), generator=g)
        mask = torch.ones(batch, seq, dtype=torch.int64)
        mask[:, seq - seq // 8:] = 0  # padded tail exercises the additive mask
        axes = {"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"}}
        return Bert(), (ids, mask), ["input_ids", "attention_mask"], ["hidden", "pooled"], axes
    if name == "gpt2":
        ids = torch.randint(0, 50257, (batch, seq), generator=g)
        return Gpt2(), (ids,), ["input_ids"], ["logits"], {"input_ids": {0: "batch", 1: "seq"}}
    raise SystemExit(f"unknown model {name}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--models", default="mlp,mobilenet_v2,resnet50,bert,gpt2")
    ap.add_argument("--opset", type=int, default=13)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--seq", type=int, default=128)
    args = ap.parse_args()
    torch.manual_seed(0)
    for name in args.models.split(","):
        out = os.path.join(args.out, name)
        os.makedirs(out, exist_ok=True)
        model, inputs, in_names, out_names, axes = build(name, args.batch, args.seq)
        model.eval()
        with torch.no_grad():
            refs = model(*inputs)
            refs = refs if isinstance(refs, tuple) else (refs,)
            torch.onnx.export(model, inputs, os.path.join(out, "model.onnx"), opset_version=args.opset,
                              input_names=in_names, output_names=out_names, dynamic_axes=axes,
                              do_constant_folding=True)
        for k, x in enumerate(inputs):
            np.save(os.path.join(out, f"input_{k}.npy"), x.numpy())
        for k, r in enumerate(refs):
            np.save(os.path.join(out, f"ref_{k}.npy"), r.numpy())
        size = os.path.getsize(os.path.join(out, "model.onnx"))
        print(f"exported {name} (opset {args.opset}, batch {args.batch}): {size / 2**20:.1f} MiB", file=sys.stderr)


if __name__ == "__main__":
    main()
