#!/usr/bin/env python3
"""PyTorch eager reference for the DGL step and the plain step of the paper's model.

2x ResNet-18 (torchvision topology, from scratch), audio (B,1,F,T), visual (B,3,1,224,224) averaged
over frames, concat head, SGD momentum 0.9 / wd 1e-4, clip 40. Same protocol as step-bench:
interleaved plain/DGL steps after warm-up; prints ms/step, samples/s and peak memory.

    python3 benchmarks/pytorch_step.py --batch 64 --audio 257x188 --steps 30 [--tf32]
"""
import argparse
import json
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision


def trunk(in_ch):
    r = torchvision.models.resnet18(weights=None)
    r.conv1 = nn.Conv2d(in_ch, 64, 7, 2, 3, bias=False)
    return nn.Sequential(r.conv1, r.bn1, r.relu, r.maxpool, r.layer1, r.layer2, r.layer3, r.layer4)


class AV(nn.Module):
    def __init__(self, k=6):
        super().__init__()
        self.audio_net, self.visual_net = trunk(1), trunk(3)
        self.fc_out = nn.Linear(1024, k)

    def encode(self, a, v):
        za = F.adaptive_avg_pool2d(self.audio_net(a), 1).flatten(1)
        b, c, t, h, w = v.shape
        fv = self.visual_net(v.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w))
        zv = fv.reshape(b, t, *fv.shape[1:]).mean(dim=(1, 3, 4))
        return za, zv


def step(model, opt, a, v, y, dgl, alpha=4.0):
    opt.zero_grad(set_to_none=True)
    za, zv = model.encode(a, v)
    if dgl:
        out = model.fc_out(torch.cat([za, zv], 1).detach())
        w, b = model.fc_out.weight.detach(), model.fc_out.bias.detach()
        out_a = za @ w[:, :512].t() + b
        out_v = zv @ w[:, 512:].t() + b
        loss = F.cross_entropy(out, y) + alpha * (F.cross_entropy(out_a, y) + F.cross_entropy(out_v, y))
    else:
        loss = F.cross_entropy(model.fc_out(torch.cat([za, zv], 1)), y)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 40.0)
    opt.step()
    return loss


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--audio", default="257x188")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--tf32", action="store_true")
    p.add_argument("--device", default="cuda")
    args = p.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    torch.backends.cudnn.allow_tf32 = args.tf32
    dev = torch.device(args.device)
    f, t = map(int, args.audio.split("x"))
    torch.manual_seed(0)
    model = AV().to(dev).train()
    opt = torch.optim.SGD(model.parameters(), lr=2e-3, momentum=0.9, weight_decay=1e-4)
    a = torch.randn(args.batch, 1, f, t, device=dev)
    v = torch.randn(args.batch, 3, 1, 224, 224, device=dev)
    y = torch.randint(0, 6, (args.batch,), device=dev)
    tot = {"plain": 0.0, "dgl": 0.0}
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for s in range(args.warmup + args.steps):
        for name in ("plain", "dgl"):
            sync()
            t0 = time.perf_counter()
            step(model, opt, a, v, y, name == "dgl").item()
            sync()
            if s >= args.warmup:
                tot[name] += time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated() / 2**30 if dev.type == "cuda" else float("nan")
    print(f"pytorch {torch.__version__} {'TF32' if args.tf32 else 'fp32'} batch {args.batch} audio 1x{f}x{t}, "
          f"{args.steps} timed steps each, peak {peak:.2f} GiB")
    for name, s in tot.items():
        ms = 1e3 * s / args.steps
        print(f"{name:>6}: {ms:8.1f} ms/step  {args.batch / (ms / 1e3):8.1f} samples/s")
        # One machine-readable line per measurement (benchmarks/gpu-report.py reads them).
        print("RESULT " + json.dumps({
            "impl": "pytorch", "routing": name, "precision": "tf32" if args.tf32 else "fp32",
            "audio": f"{f}x{t}", "batch": args.batch, "device": dev.type, "ms": round(ms, 3),
            "samples_per_s": round(args.batch / (ms / 1e3), 2),
            "peak_gib": None if dev.type != "cuda" else round(peak, 3), "torch": torch.__version__}))
    print(f"ratio dgl/plain: {tot['dgl'] / tot['plain']:.3f}")


if __name__ == "__main__":
    main()
