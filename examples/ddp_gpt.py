#!/usr/bin/env python3
"""A GPT-style model trained with PyTorch DDP on synthetic data: the unmodified workload that
`corun --` is measured on. Run with torchrun; rank 0 writes a JSON summary.

  torchrun --nproc_per_node=4 examples/ddp_gpt.py --steps 40 --warmup 10 --out run.json

--mode takes DDP's gradient communication apart (docs/OVERLAP.md):
  stock      DDP as it comes: buckets filled, allreduced and copied back during backward.
  no_sync    every forward/backward inside ddp.no_sync(): no allreduce and no bucket work at all.
  noop_hook  a comm hook that hands each bucket back untouched: DDP's bucket copies and
             bookkeeping, no communication.
In every mode each step ends with the same two 1-float allreduces (the step time's max, the
loss's mean), outside the timed region; a trace can cut steps at the torch.randint that opens
each step (kernel name DistributionRandomKernel).
"""
import argparse
import contextlib
import json
import os
import statistics
import time

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP


class Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.proj = nn.Linear(d, d, bias=False)
        self.ln2 = nn.LayerNorm(d)
        self.up = nn.Linear(d, 4 * d, bias=False)
        self.down = nn.Linear(4 * d, d, bias=False)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, self.heads, d // self.heads).unbind(2)
        y = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(b, t, d))
        return x + self.down(F.gelu(self.up(self.ln2(x))))


class GPT(nn.Module):
    def __init__(self, vocab, d, layers, heads):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.blocks = nn.ModuleList(Block(d, heads) for _ in range(layers))
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)

    def forward(self, idx):
        x = self.emb(idx)
        for blk in self.blocks:
            x = blk(x)
        return self.head(self.ln(x))


def noop_hook(state, bucket):
    """A comm hook that communicates nothing: the bucket comes back as it went in."""
    fut = torch.futures.Future()
    fut.set_result(bucket.buffer())
    return fut


def delayed_allreduce_hook(delay_us):
    """Stock's allreduce from a comm hook that first holds the calling thread for delay_us: how
    much host time per bucket the step absorbs (the autograd thread is the one that launches the
    backward kernels)."""
    from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

    def hook(state, bucket):
        t_end = time.perf_counter() + delay_us * 1e-6
        while time.perf_counter() < t_end:
            pass
        return allreduce_hook(state, bucket)
    return hook


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--d", type=int, default=4096)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--heads", type=int, default=32)
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--bucket-mb", type=int, default=25)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--mode", choices=("stock", "no_sync", "noop_hook"), default="stock",
                    help="stock DDP, no gradient sync at all, or a comm hook that communicates nothing")
    ap.add_argument("--hook-delay-us", type=float, default=None,
                    help="stock mode through a comm hook that busy-waits this many microseconds per bucket "
                         "before its allreduce (0: the hook alone)")
    ap.add_argument("--bucket-view", action="store_true", help="DDP(gradient_as_bucket_view=True)")
    ap.add_argument("--variant", default=os.environ.get("CORUN_POLICY", "stock"))
    ap.add_argument("--out", help="JSON summary written by rank 0")
    args = ap.parse_args()

    dist.init_process_group("nccl")
    rank, world = dist.get_rank(), dist.get_world_size()
    local = int(os.environ.get("LOCAL_RANK", rank))
    torch.cuda.set_device(local)
    torch.manual_seed(args.seed)  # identical initial weights on every rank and every run
    with torch.device("cuda"):  # initialise on the GPU: fast, and deterministic with the seed
        model = GPT(args.vocab, args.d, args.layers, args.heads).to(torch.bfloat16)
    ddp = DDP(model, device_ids=[local], bucket_cap_mb=args.bucket_mb, gradient_as_bucket_view=args.bucket_view)
    if args.mode == "noop_hook":
        ddp.register_comm_hook(None, noop_hook)
    elif args.hook_delay_us is not None:
        if args.mode != "stock":
            ap.error("--hook-delay-us needs --mode stock")
        ddp.register_comm_hook(None, delayed_allreduce_hook(args.hook_delay_us))
    # no_sync: DDP neither prepares the reducer in forward nor fills buckets in backward.
    sync_ctx = ddp.no_sync if args.mode == "no_sync" else contextlib.nullcontext
    opt = torch.optim.SGD(ddp.parameters(), lr=args.lr)
    gen = torch.Generator(device="cuda").manual_seed(args.seed + 17 * rank)  # per-rank data shard

    times, losses, host = [], [], []
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    for step in range(args.steps):
        idx = torch.randint(0, args.vocab, (args.batch, args.seq + 1), device="cuda", generator=gen)
        torch.cuda.synchronize()
        start.record()
        t_host = time.perf_counter()
        with sync_ctx():
            logits = ddp(idx[:, :-1])
            loss = F.cross_entropy(logits.float().view(-1, args.vocab), idx[:, 1:].reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
        opt.step()
        end.record()
        # How long the host took to queue the step. Close to the step time: the GPU waited for
        # the host at the end; well below it: the host was ahead by then (it may still have been
        # behind earlier in the step).
        h = (time.perf_counter() - t_host) * 1e3
        end.synchronize()
        # The step time of the job is the slowest rank's; so is the host's queueing time.
        t = torch.tensor([start.elapsed_time(end), h], device="cuda")
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        host.append(t[1].item())
        l = loss.detach().float()
        dist.all_reduce(l, op=dist.ReduceOp.AVG)
        times.append(t[0].item())
        losses.append(l.item())
    timed = times[args.warmup:]
    summary = {
        "variant": args.variant,
        "mode": args.mode,
        "hook_delay_us": args.hook_delay_us,
        "world": world,
        "card": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "nccl": ".".join(map(str, torch.cuda.nccl.version())),
        "cuda": torch.version.cuda,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "model": {"d": args.d, "layers": args.layers, "seq": args.seq, "batch": args.batch, "vocab": args.vocab,
                  "params": sum(p.numel() for p in model.parameters()), "dtype": "bf16", "bucket_mb": args.bucket_mb,
                  "gradient_as_bucket_view": args.bucket_view},
        "steps": args.steps, "warmup": args.warmup,
        "step_ms": {"median": statistics.median(timed), "min": min(timed), "max": max(timed), "all": timed},
        "host_queue_ms": {"median": statistics.median(host[args.warmup:]), "min": min(host[args.warmup:]),
                          "max": max(host[args.warmup:]), "over": "the slowest rank per step"},
        "loss": losses,
        "env": {k: v for k, v in os.environ.items() if k.startswith(("CORUN_", "TORCH_NCCL", "NCCL_", "CUDA_DEVICE_MAX"))},
    }
    if rank == 0:
        print(f"[{args.variant}/{args.mode}{'' if args.hook_delay_us is None else f'+hook {args.hook_delay_us:g} us'}] world {world}: step median {summary['step_ms']['median']:.2f} ms "
              f"(min {summary['step_ms']['min']:.2f}, max {summary['step_ms']['max']:.2f}); "
              f"host queued it in {summary['host_queue_ms']['median']:.2f}; "
              f"loss {losses[0]:.4f} -> {losses[-1]:.4f}", flush=True)
        if args.out:
            with open(args.out, "w") as f:
                json.dump(summary, f, indent=1)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
