"""Two cells RecurrentShop users bring: a recurrent highway network and an attention decoder.

Both are written the way a RecurrentShop user writes them, one ``Dense`` per weight matrix, so
that the passes meet the graphs such users give them (``rhn`` and ``attention`` of the
pass benchmark, bench/passes.py; the first-call probe of the seq2seq model, bench/first_call.py).

RHN (Zilly et al. 2017, RecurrentShop's examples/rhn.py), ``depth`` micro-steps per time step::

    s_0 = h_{t-1}
    s_l = tanh(x W_H [l=1] + s_{l-1} R_H,l + b_H,l) * t_l + s_{l-1} * (1 - t_l)
    t_l = sigmoid(x W_T [l=1] + s_{l-1} R_T,l + b_T,l)
    h_t = s_depth

Attention decoder (RecurrentShop's seq2seq ``AttentionDecoderCell``, an additive / Bahdanau
score): the encoder sequence ``enc`` (T_enc, d) is a constant seen at every step::

    e = tanh(enc W_a + (h_{t-1} U_a)[None]) v         (T_enc, 1)
    a = softmax(e over T_enc);  ctx = sum(a * enc over T_enc)
    [h_t, c_t] = LSTM([x_t, ctx], h_{t-1}, c_{t-1})   (one Dense per gate)
"""

from __future__ import annotations

from rshop_core import Input, RecurrentModel
from rshop_core import functional as F
from rshop_core.layers import Dense


def rhn(input_dim, units, depth=3, seed=0):
    """An RHN layer (return_sequences=True) with ``depth`` highway micro-steps per time step."""
    x = Input((input_dim,), name="x")
    h = Input((units,), name="h")
    s = h
    for layer in range(depth):
        hl, tl = Dense(units, name=f"H{layer}"), Dense(units, name=f"T{layer}")
        rh, rt = Dense(units, use_bias=False, name=f"RH{layer}"), Dense(units, use_bias=False, name=f"RT{layer}")
        if layer == 0:
            pre_h, pre_t = F.add(hl(x), rh(s)), F.add(tl(x), rt(s))
        else:
            pre_h, pre_t = hl(s), tl(s)
        g = F.sigmoid(pre_t)
        s = F.add(F.multiply(F.tanh(pre_h), g), F.multiply(s, F.subtract(F.constant(1.0), g)))
    return RecurrentModel(
        input=x, initial_states=[h], output=s, final_states=[s], return_sequences=True, seed=seed, name="rhn"
    )


def attention_decoder(input_dim, units, enc_steps, enc_dim, attn_dim=None, seed=0):
    """An LSTM decoder attending over the constant encoder sequence (``constants=[enc]`` at call)."""
    attn_dim = attn_dim or units
    x = Input((input_dim,), name="x")
    h, c = Input((units,), name="h"), Input((units,), name="c")
    enc = Input((enc_steps, enc_dim), name="enc")
    keys = Dense(attn_dim, use_bias=False, name="W_a")(enc)  # (T_enc, a)
    query = F.reshape(Dense(attn_dim, use_bias=False, name="U_a")(h), (1, attn_dim))
    scores = Dense(1, use_bias=False, name="v")(F.tanh(F.add(keys, query)))  # (T_enc, 1)
    weights = F.softmax(scores, axis=-2)
    ctx = F.sum(F.multiply(weights, enc), axes=[-2])  # (enc_dim,)
    inp = F.concat([x, ctx])
    gates = [F.add(Dense(units, name=f"W_{g}")(inp), Dense(units, use_bias=False, name=f"U_{g}")(h)) for g in "ifco"]
    i, f, o = F.sigmoid(gates[0]), F.sigmoid(gates[1]), F.sigmoid(gates[3])
    c_new = F.add(F.multiply(f, c), F.multiply(i, F.tanh(gates[2])))
    h_new = F.multiply(o, F.tanh(c_new))
    return RecurrentModel(
        input=x,
        initial_states=[h, c],
        output=h_new,
        final_states=[h_new, c_new],
        constants=[enc],
        return_sequences=True,
        seed=seed,
        name="attention_decoder",
    )
