"""Torch anchors: torch.nn.LSTM (oneDNN fused) and hand-written loops for the LSTM and C1."""

from __future__ import annotations

from adapters import torch_impl


def _setup(w, x_np):
    import torch

    torch.set_num_threads(2)
    p = {k: torch.nn.Parameter(torch.from_numpy(v.copy())) for k, v in w.items()}
    return torch, p, torch.from_numpy(x_np)


def nn_lstm(w, x_np):
    torch, _, x = _setup(w, x_np)
    hidden = w["recurrent_kernel"].shape[0]
    lstm = torch.nn.LSTM(x_np.shape[-1], hidden, batch_first=True)
    with torch.no_grad():  # torch holds the transposes, rows [i|f|g|o]; bias_ih + bias_hh = bias
        lstm.weight_ih_l0.copy_(torch.from_numpy(w["kernel"].T.copy()))
        lstm.weight_hh_l0.copy_(torch.from_numpy(w["recurrent_kernel"].T.copy()))
        lstm.bias_ih_l0.copy_(torch.from_numpy(w["bias"]))
        lstm.bias_hh_l0.zero_()
    return torch_impl(lambda: lstm(x)[0], list(lstm.parameters()))


def lstm_loop(w, x_np):
    torch, p, x = _setup(w, x_np)
    k, r, b = p["kernel"], p["recurrent_kernel"], p["bias"]

    def forward():
        h = c = x.new_zeros(x.shape[0], r.shape[0])
        ys = []
        for xt in x.unbind(1):  # x[:, t] would make the backward O(T^2)
            i, f, g, o = (xt @ k + h @ r + b).chunk(4, 1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            ys.append(h)
        return torch.stack(ys, 1)

    return torch_impl(forward, [k, r, b])


def c1_loop(w, x_np):
    torch, p, x = _setup(w, x_np)
    k, r, b = p["kernel"], p["recurrent_kernel"], p["bias"]
    pi, pf, po = p["peephole_i"], p["peephole_f"], p["peephole_o"]

    def forward():
        h = c = x.new_zeros(x.shape[0], r.shape[0])
        ys = []
        for xt in x.unbind(1):
            zi, zf, zg, zo = (xt @ k + h @ r + b).chunk(4, 1)
            c = torch.sigmoid(zf + pf * c) * c + torch.sigmoid(zi + pi * c) * torch.tanh(zg)
            h = torch.sigmoid(zo + po * c) * torch.tanh(c)
            ys.append(h)
        return torch.stack(ys, 1)

    return torch_impl(forward, list(p.values()))
