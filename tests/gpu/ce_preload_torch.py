"""Unmodified PyTorch collectives under `corun -p ce` (run by ce_preload_torch.sh through torchrun):
all_reduce, reduce_scatter_tensor and all_gather_into_tensor in bf16 and fp32, 1 MiB to 64 MiB and
odd sizes, each checked against the exact expected values (small integers: every sum is exact in
bf16). Exit 1 on any wrong value."""
import os
import sys

import torch
import torch.distributed as dist


def main():
    local = int(os.environ["LOCAL_RANK"])
    torch.cuda.set_device(local)
    dev = torch.device("cuda", local)
    dist.init_process_group("nccl", device_id=dev)
    rank, world = dist.get_rank(), dist.get_world_size()
    tri = world * (world + 1) // 2
    wrong = 0
    checks = 0
    for dtype in (torch.bfloat16, torch.float32):
        esize = torch.tensor([], dtype=dtype).element_size()
        # 1, 4, 16, 64 MiB and sizes that are multiples of nothing.
        counts = [(1 << 20) // esize, (4 << 20) // esize, (16 << 20) // esize, (64 << 20) // esize,
                  (1 << 20) // esize + 3, 3_000_017, 7_777_777 // esize]
        for n in counts:
            pattern = (torch.arange(n, device=dev) % 7 + 1).to(dtype)
            for it in range(3):
                x = pattern * (rank + 1 + it)
                dist.all_reduce(x)
                want = pattern * (tri + world * it)
                wrong += int((x != want).sum().item())
                # reduce-scatter / all-gather: n per rank.
                big = torch.cat([pattern * (rank + 1 + it)] * world)
                out = torch.empty(n, dtype=dtype, device=dev)
                dist.reduce_scatter_tensor(out, big)
                wrong += int((out != want).sum().item())
                gathered = torch.empty(n * world, dtype=dtype, device=dev)
                dist.all_gather_into_tensor(gathered, pattern * (rank + 1))
                for r in range(world):
                    wrong += int((gathered[r * n:(r + 1) * n] != pattern * (r + 1)).sum().item())
                checks += 3
    torch.cuda.synchronize()
    dist.destroy_process_group()
    print(f"[ce_preload_torch] rank {rank}/{world}: {checks} collectives, {wrong} wrong values", flush=True)
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
