"""Child process of test_torch_ddp.py: 2 gloo processes (torch.multiprocessing.spawn) train each model of
``dp_models`` one step under ``DistributedDataParallel``, each on its half of the global batch with
``layer.set_replica(rank, 2)``; the DDP-averaged gradients and each rank's carried states are compared here
with one process on the whole batch. Prints one ``REPORT {json}`` line."""

from __future__ import annotations

import json
import os
import socket
import sys
import tempfile

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from dp_models import GLOBAL_BATCH, NAMES, SEED, build, data, max_abs, max_diff
from torch.nn.parallel import DistributedDataParallel as DDP

WORLD = 2


def one_step(layer, x1, x2, w, module=None) -> None:
    """The stateful warm-up call, then one training call and its backward (through ``module``: DDP)."""
    module = module or layer
    if layer.options.stateful:
        layer.reset_states()
        with torch.no_grad():
            module(torch.from_numpy(x1))
    layer.reseed(SEED)
    y = module(torch.from_numpy(x2), training=True)
    (torch.sum(y * torch.from_numpy(w)) / len(w)).backward()  # DDP averages: the global mean


def grads(layer) -> dict[str, np.ndarray]:
    return {k: p.grad.detach().numpy().copy() for k, p in layer.named_parameters()}


def worker(rank: int, port: int, outdir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    b = GLOBAL_BATCH // WORLD
    rows = slice(rank * b, (rank + 1) * b)  # this rank's contiguous shard, in rank order
    saved = {}
    for name in NAMES:
        layer = build(name).lower("torch")
        layer.set_replica(rank, WORLD)
        x1, x2, w = data(name)
        one_step(layer, x1[rows], x2[rows], w[rows], DDP(layer))
        saved.update({f"{name}|grad|{k}": v for k, v in grads(layer).items()})
        if layer.options.stateful:
            saved.update({f"{name}|state|{i}": s.numpy() for i, s in enumerate(layer.states)})
        if name == "dropout_cell":  # without set_replica every rank draws the first rows' masks
            plain = build(name).lower("torch")
            one_step(plain, x1[rows], x2[rows], w[rows], DDP(plain))
            saved.update({f"{name}_without_set_replica|grad|{k}": v for k, v in grads(plain).items()})
    np.savez(os.path.join(outdir, f"rank{rank}.npz"), **saved)
    dist.barrier()  # every rank done with its collectives before the group goes
    dist.destroy_process_group()
    # skip the interpreter's finalization: gloo's threads can still hold Python objects there and abort the
    # process (SIGABRT, "terminate called without an active exception") after every result is saved
    sys.stdout.flush()
    os._exit(0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    torch.manual_seed(0)
    if sys.platform.startswith("linux"):
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")  # gloo's traffic on the loopback interface only
    with tempfile.TemporaryDirectory() as outdir:
        mp.spawn(worker, args=(free_port(), outdir), nprocs=WORLD, join=True)
        ranks = [dict(np.load(os.path.join(outdir, f"rank{r}.npz"))) for r in range(WORLD)]
    report: dict = {"world": WORLD}
    for name in NAMES:
        layer = build(name).lower("torch")
        x1, x2, w = data(name)
        one_step(layer, x1, x2, w)
        g_one = grads(layer)
        out: dict = {"scale": max_abs(g_one)}
        for r, saved in enumerate(ranks):
            pre = f"{name}|grad|"
            out[f"rank{r}"] = max_diff({k[len(pre) :]: v for k, v in saved.items() if k.startswith(pre)}, g_one)
        if layer.options.stateful:
            b = GLOBAL_BATCH // WORLD
            out["states"] = max(
                float(np.abs(ranks[r][f"{name}|state|{i}"] - s.numpy()[r * b : (r + 1) * b]).max())
                for r in range(WORLD)
                for i, s in enumerate(layer.states)
            )
        if name == "dropout_cell":  # the masks matter: training != inference
            pre = f"{name}_without_set_replica|grad|"
            alone = {k[len(pre) :]: v for k, v in ranks[0].items() if k.startswith(pre)}
            out["without_set_replica"] = max_diff(alone, g_one)
            infer = build(name).lower("torch").eval()
            y = infer(torch.from_numpy(x2))
            (torch.sum(y * torch.from_numpy(w)) / len(w)).backward()
            out["training_vs_inference"] = max_diff(g_one, grads(infer))
        report[name] = out
    print("REPORT " + json.dumps(report))


if __name__ == "__main__":
    sys.exit(main())
