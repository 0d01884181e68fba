"""temporary"""

from __future__ import annotations

import torch


def linear_scan(a, b, h0):
    block = a.ndim == b.ndim + 1
    h, out = h0, []
    for t in range(b.shape[1]):
        h = (torch.einsum("...ij,...j->...i", a[:, t], h) if block else a[:, t] * h) + b[:, t]
        out.append(h)
    return torch.stack(out, 1)


# -- what the shared time-parallel driver uses (rshop_backends.parallel.ArrayOps) -------------
AUTO_MIN_STEPS: int | None = 8  # measured: bench/parallel (docs/time-parallel.md)

reshape = torch.reshape
concat = torch.cat
stack = torch.stack
zeros_like = torch.zeros_like


def take(a, index):
    return a[..., torch.as_tensor(index, device=a.device)]


def repeat_time(a, steps):
    return a[:, None].expand(a.shape[0], steps, *a.shape[1:])


def stop_gradient(a):
    return a.detach()


def sum_last(a):
    return a.sum(-1)


def max_change(new, old):
    return ((new - old).abs() / (1.0 + new.abs())).max()


def while_loop(cond, body, init):
    carry = init
    while bool(cond(carry)):
        carry = body(carry)
    return carry


def cond(pred, true_fn, false_fn):
    return true_fn() if bool(pred) else false_fn()


def report(callback, *values):
    callback(*[v.item() if isinstance(v, torch.Tensor) else v for v in values])
