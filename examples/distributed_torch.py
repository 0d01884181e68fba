"""Data parallel on torch: ``DistributedDataParallel``, one process per replica, SGD.

The model is a custom gated cell written as one step, with dropout on its input, a learned initial state
and ``remat`` (gradient checkpointing every 4 steps); it learns to output its input of the previous step.
Each rank lowers it, calls ``layer.set_replica(rank, world_size)`` (its dropout masks are then its rows of
the global batch's masks: the run computes what one process computes on the whole batch) and trains on its
contiguous shard of every global batch. Rank 0 checks the first step's DDP-averaged gradients against one
process on the whole batch and prints the largest difference.

    torchrun --nproc_per_node=2 examples/distributed_torch.py [--steps 30] [--batch 16]
    python examples/distributed_torch.py --nproc 2      # the same without torchrun (spawns the processes)

gloo on CPU, nccl with CUDA (one GPU per process: ``LOCAL_RANK``). See docs/distributed.md.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from _distributed_task import batch, build_model  # the same model and data on every runtime
from torch.nn.parallel import DistributedDataParallel as DDP


def train(rank: int, world: int, args: argparse.Namespace) -> dict:
    cuda = torch.cuda.is_available()
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', rank))}" if cuda else "cpu")
    if cuda:
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if cuda else "gloo", rank=rank, world_size=world)
    layer = build_model().lower("torch").to(device)
    layer.set_replica(rank, world)  # dropout masks: this rank's rows of the global batch's
    model = DDP(layer, device_ids=[device.index] if cuda else None)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr)
    rng, local = np.random.default_rng(0), args.batch // world  # every rank draws the same global batches
    shard = slice(rank * local, (rank + 1) * local)
    tensor = lambda a: torch.from_numpy(a).to(device)
    losses, check = [], float("nan")
    for step in range(args.steps):
        x, y = batch(rng, args.batch)
        if step == 0:  # the same step in one process on the whole batch, from the same weights and seed
            one = build_model().lower("torch").to(device)
            one.load_state_dict(layer.state_dict())
            one.reseed(0), layer.reseed(0)
            torch.mean((one(tensor(x), training=True) - tensor(y)) ** 2).backward()
        opt.zero_grad()
        loss = torch.mean((model(tensor(x[shard]), training=True) - tensor(y[shard])) ** 2)
        loss.backward()  # DDP averages the ranks' gradients: the gradient of the global mean
        if step == 0:
            check = max(float((p.grad - q.grad).abs().max()) for p, q in zip(layer.parameters(), one.parameters()))
        opt.step()
        dist.all_reduce(loss := loss.detach())
        losses.append(float(loss) / world)
        if rank == 0 and step == 0:
            print(f"{world} processes ({dist.get_backend()}), global batch {args.batch}")
            print(f"step 0: max |gradient DDP - gradient in one process| = {check:.2e}")
        if rank == 0 and (step % 10 == 0 or step == args.steps - 1):
            print(f"step {step:3d}  loss {losses[-1]:.4f}")
    del model, opt  # DDP's reducer holds the process group: let it go first
    dist.barrier()  # every rank done with its collectives before the group goes
    dist.destroy_process_group()
    return {"losses": losses, "check": check, "world": world}


def _spawned(rank: int, world: int, port: int, args: argparse.Namespace) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    if sys.platform.startswith("linux"):
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")  # one machine: gloo on the loopback interface
    train(rank, world, args)
    sys.stdout.flush()
    os._exit(0)  # a helper process: done, skip finalization (where gloo's threads can still abort it)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=16, help="the global batch, split over the processes")
    parser.add_argument("--lr", type=float, default=0.2)
    parser.add_argument("--nproc", type=int, default=2, help="processes to spawn when not started by torchrun")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if "RANK" in os.environ:  # started by torchrun: one process of WORLD_SIZE
        world = int(os.environ["WORLD_SIZE"])
        if args.batch % world:
            parser.error(f"--batch {args.batch} must be a multiple of the {world} processes")
        train(int(os.environ["RANK"]), world, args)
        return
    if args.batch % args.nproc:
        parser.error(f"--batch {args.batch} must be a multiple of --nproc {args.nproc}")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_spawned, args=(args.nproc, port, args), nprocs=args.nproc, join=True)


if __name__ == "__main__":
    main()
