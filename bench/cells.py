"""C1, the custom cell of the benchmark: an LSTM with diagonal peephole connections.

No framework ships it fused, so every engine runs it as a generic loop.  With
``z = x_t W + h_{t-1} U + b`` cut into ``[i | f | g | o]``::

    i = sigmoid(z_i + w_ci * c_{t-1})
    f = sigmoid(z_f + w_cf * c_{t-1})
    c_t = f * c_{t-1} + i * tanh(z_g)
    o = sigmoid(z_o + w_co * c_t)
    h_t = o * tanh(c_t)

Weights: the LSTM's ``kernel``, ``recurrent_kernel``, ``bias`` and ``peephole_i``, ``peephole_f``,
``peephole_o`` (units,).  Peepholes start random (uniform +-0.5) so that they matter in the checks.
"""

from __future__ import annotations

from rshop_core import functional as F
from rshop_core.cells import Cell
from rshop_core.initializers import RandomUniform


class PeepholeLSTMCell(Cell):
    state_names = ("h", "c")

    def step(self, x, states):
        h, c = states
        u, dt = self.units, x.dtype
        k = self.add_weight("kernel", (x.shape[-1], 4 * u), "glorot_uniform", dt)
        r = self.add_weight("recurrent_kernel", (u, 4 * u), "orthogonal", dt)
        b = self.add_weight("bias", (4 * u,), RandomUniform(-0.1, 0.1), dt)
        peep = RandomUniform(-0.5, 0.5)
        w_ci, w_cf, w_co = (self.add_weight(f"peephole_{g}", (u,), peep, dt) for g in "ifo")
        z = F.add(F.add(F.matmul(x, k), F.matmul(h, r)), b)
        zi, zf, zg, zo = F.split(z, 4)
        i = F.sigmoid(F.add(zi, F.multiply(w_ci, c)))
        f = F.sigmoid(F.add(zf, F.multiply(w_cf, c)))
        c_new = F.add(F.multiply(f, c), F.multiply(i, F.tanh(zg)))
        o = F.sigmoid(F.add(zo, F.multiply(w_co, c_new)))
        h_new = F.multiply(o, F.tanh(c_new))
        return h_new, [h_new, c_new]
