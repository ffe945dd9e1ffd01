#!/usr/bin/env python3
"""PyTorch eager reference for the DGL step and the plain step (the model step-bench trains).

`--preset paper` (default): 2x ResNet-18 (torchvision topology, from scratch), audio (B,1,F,T),
visual (B,3,1,224,224) averaged over frames, concat head (1024 -> 6).
`--preset tiny`: the same topology at base width 8 (widths 8/16/32/64, the tiny preset of
step-bench), audio (B,1,65,63), visual (B,3,1,32,32), concat head (128 -> 6), batch 32.
SGD momentum 0.9 / wd 1e-4, clip 40. Same protocol as step-bench: interleaved plain/DGL steps after
warm-up; prints ms/step, samples/s and peak memory (CUDA: max_memory_allocated; CPU: the process's
peak RSS, VmHWM).

    python3 benchmarks/pytorch_step.py --batch 64 --audio 257x188 --steps 30 [--tf32]
    python3 benchmarks/pytorch_step.py --device cpu --preset tiny --threads 2
"""
import argparse
import json
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

try:
    import torchvision
except ImportError:  # the same topology is built below without it
    torchvision = None


def proc_status_kib(key):
    """VmHWM / VmRSS of this process in KiB (Linux), or None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class BasicBlock(nn.Module):
    """torchvision's BasicBlock."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


def trunk(in_ch, base=64):
    """torchvision's resnet18 without avgpool/fc (same modules, same order) at any base width; at
    base 64 with torchvision installed, torchvision's own modules."""
    if base == 64 and torchvision is not None:
        r = torchvision.models.resnet18(weights=None)
        r.conv1 = nn.Conv2d(in_ch, 64, 7, 2, 3, bias=False)
        return nn.Sequential(r.conv1, r.bn1, r.relu, r.maxpool, r.layer1, r.layer2, r.layer3, r.layer4)
    mods = [nn.Conv2d(in_ch, base, 7, 2, 3, bias=False), nn.BatchNorm2d(base), nn.ReLU(), nn.MaxPool2d(3, 2, 1)]
    cin = base
    for stage in range(4):
        cout = base << stage
        for b in range(2):
            mods.append(BasicBlock(cin, cout, (1 if stage == 0 else 2) if b == 0 else 1))
            cin = cout
    return nn.Sequential(*mods)


class AV(nn.Module):
    def __init__(self, k=6, base=64):
        super().__init__()
        self.audio_net, self.visual_net = trunk(1, base), trunk(3, base)
        self.d = 8 * base
        self.fc_out = nn.Linear(2 * self.d, k)

    def encode(self, a, v):
        za = F.adaptive_avg_pool2d(self.audio_net(a), 1).flatten(1)
        b, c, t, h, w = v.shape
        fv = self.visual_net(v.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w))
        zv = fv.reshape(b, t, *fv.shape[1:]).mean(dim=(1, 3, 4))
        return za, zv


def step(model, opt, a, v, y, dgl, alpha=4.0):
    opt.zero_grad(set_to_none=True)
    za, zv = model.encode(a, v)
    d = model.d
    if dgl:
        out = model.fc_out(torch.cat([za, zv], 1).detach())
        w, b = model.fc_out.weight.detach(), model.fc_out.bias.detach()
        out_a = za @ w[:, :d].t() + b
        out_v = zv @ w[:, d:].t() + b
        loss = F.cross_entropy(out, y) + alpha * (F.cross_entropy(out_a, y) + F.cross_entropy(out_v, y))
    else:
        loss = F.cross_entropy(model.fc_out(torch.cat([za, zv], 1)), y)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 40.0)
    opt.step()
    return loss


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--preset", choices=["paper", "tiny"], default="paper")
    p.add_argument("--batch", type=int, default=None, help="default: 64 (paper), 32 (tiny)")
    p.add_argument("--audio", default=None, help="FxT; default: 257x188 (paper), 65x63 (tiny)")
    p.add_argument("--base-width", type=int, default=None, help="default: 64 (paper), 8 (tiny)")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--tf32", action="store_true")
    p.add_argument("--device", default="cuda")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    args = p.parse_args()
    tiny = args.preset == "tiny"
    batch = args.batch or (32 if tiny else 64)
    audio = args.audio or ("65x63" if tiny else "257x188")
    base = args.base_width or (8 if tiny else 64)
    side = 32 if tiny else 224
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    torch.backends.cudnn.allow_tf32 = args.tf32
    dev = torch.device(args.device)
    f, t = map(int, audio.split("x"))
    torch.manual_seed(0)
    model = AV(base=base).to(dev).train()
    opt = torch.optim.SGD(model.parameters(), lr=2e-3, momentum=0.9, weight_decay=1e-4)
    a = torch.randn(batch, 1, f, t, device=dev)
    v = torch.randn(batch, 3, 1, side, side, device=dev)
    y = torch.randint(0, 6, (batch,), device=dev)
    tot = {"plain": 0.0, "dgl": 0.0}
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    rss_warm = None
    for s in range(args.warmup + args.steps):
        if s == args.warmup:
            rss_warm = proc_status_kib("VmRSS")
        for name in ("plain", "dgl"):
            sync()
            t0 = time.perf_counter()
            step(model, opt, a, v, y, name == "dgl").item()
            sync()
            if s >= args.warmup:
                tot[name] += time.perf_counter() - t0
    if dev.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**30
        peak_txt = f"peak {peak:.2f} GiB"
    else:
        hwm = proc_status_kib("VmHWM")
        peak = hwm / 2**20 if hwm else float("nan")
        rss_end = proc_status_kib("VmRSS")
        peak_txt = (f"peak RSS (VmHWM) {peak:.3f} GiB, RSS after warm-up {rss_warm / 2**20:.3f} GiB, "
                    f"at the end {rss_end / 2**20:.3f} GiB, threads {torch.get_num_threads()}")
    print(f"pytorch {torch.__version__} {'TF32' if args.tf32 else 'fp32'} preset {args.preset} batch {batch} "
          f"base {base} audio 1x{f}x{t} frames 3x1x{side}x{side}, {args.steps} timed steps each, {peak_txt}")
    for name, s in tot.items():
        ms = 1e3 * s / args.steps
        print(f"{name:>6}: {ms:8.1f} ms/step  {batch / (ms / 1e3):8.1f} samples/s")
        # One machine-readable line per measurement (benchmarks/gpu-report.py, cpu-compare.sh read them).
        print("RESULT " + json.dumps({
            "impl": "pytorch", "routing": name, "precision": "tf32" if args.tf32 else "fp32",
            "preset": args.preset, "audio": f"{f}x{t}", "batch": batch, "device": dev.type, "ms": round(ms, 3),
            "samples_per_s": round(batch / (ms / 1e3), 2),
            "peak_gib": None if peak != peak else round(peak, 3), "torch": torch.__version__,
            "threads": torch.get_num_threads()}))
    print(f"ratio dgl/plain: {tot['dgl'] / tot['plain']:.3f}")


if __name__ == "__main__":
    main()
