"""Sorting digit sequences with RecurrentShop's attention seq2seq, trained on every engine.

The input is a sequence of random digits (one-hot), the target the same digits in ascending order. The
wiring is RecurrentShop's AttentionSeq2Seq: an LSTM encoder returns its whole sequence and its final states;
the decoder starts from those states (encoder states -> decoder), runs ``decode=True`` for the output length
with the encoder's last output as its input, feeds back its previous prediction (readout) or, in training,
the previous target (teacher forcing), and attends over the encoder's sequence, passed as a constant. The
decoder's step is two LSTM cells sharing one set of states (RecurrentShop's ``state_sync=True``). The metric
is exact match: every digit of the sorted sequence right.

    python examples/seq2seq_sort.py [--engine jax|torch|tensorflow|all] [--steps 1500] [--smoke] [--plot]

optax on jax, torch.optim on torch, Keras' Adam with ``Model.fit`` on tensorflow (both models inside
``rshop_backends.keras.RecurrentLayer``). The same initial weights and batches on every engine.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    Result,
    arguments,
    batches,
    finish,
    keras_feed,
    keras_losses,
    keras_on_tensorflow,
    keras_recorder,
    progress,
    timed,
)

from rshop_core import Input, RecurrentModel
from rshop_core import functional as F
from rshop_core.cells import LSTMCell
from rshop_core.layers import Dense

DIGITS, LR, BATCH, EPS = 10, 5e-3, 64, 1e-7
SIZES = {"full": (5, 48), "smoke": (3, 8)}  # (digits to sort, units)


def sorting_task(rng: np.random.Generator, batch: int, length: int) -> tuple[np.ndarray, np.ndarray]:
    """One-hot digit sequences (batch, length, 10) and their sorted versions."""
    digits = rng.integers(0, DIGITS, (batch, length))
    eye = np.eye(DIGITS, dtype=np.float32)
    return eye[digits], eye[np.sort(digits, axis=1)]


def encoder_model(units: int, seed: int) -> RecurrentModel:
    return LSTMCell(units, input_dim=DIGITS, name="enc_lstm").get_layer(
        return_sequences=True, return_states=True, name="encoder", seed=seed
    )


def decoder_model(units: int, out_len: int, seed: int) -> RecurrentModel:
    """One decoding step: attention over the encoder's sequence, two state-synced LSTM cells, a softmax readout."""
    v = Input((units,), name="v")  # the encoder's last output, the same at every step (decode=True)
    h, c = Input((units,), name="h"), Input((units,), name="c")
    y_tm1 = Input((DIGITS,), name="y_prev")  # readout: the previous prediction (the target, teacher-forced)
    enc = Input((None, units), name="encoded")  # constant: the whole encoder sequence
    scores = F.einsum("td,d->t", enc, Dense(units, use_bias=False, name="query")(h))  # Luong's general score
    attention = F.softmax(scores)
    context = F.einsum("t,td->d", attention, enc)
    step_in = F.concat([v, context, y_tm1])
    h1, (h1, c1) = LSTMCell(units, name="dec_lstm_1")(step_in, [h, c])
    h2, (h2, c2) = LSTMCell(units, name="dec_lstm_2")(h1, [h1, c1])  # state_sync: reads what cell 1 wrote
    probs = F.softmax(Dense(DIGITS, name="out")(F.concat([h2, context])))
    return RecurrentModel(
        input=v,
        initial_states=[h, c],
        output=probs,
        final_states=[h2, c2],
        readout_input=y_tm1,
        teacher_force=True,
        constants=[enc],
        decode=True,
        output_length=out_len,
        name="decoder",
        seed=seed,
    )


def cross_entropy(xp, probs, target):
    """Keras' categorical_crossentropy on probabilities, averaged over batch and time (xp: jnp or torch)."""
    return -xp.mean(xp.sum(target * xp.log(xp.clip(probs, EPS, 1.0 - EPS)), -1))


# -- one training loop per engine ---------------------------------------------------------------------
def train_jax(enc_model, dec_model, data, tick):
    import jax
    import jax.numpy as jnp
    import optax

    enc, dec = enc_model.lower("jax"), dec_model.lower("jax")
    params = {"enc": enc.params, "dec": dec.params}
    opt = optax.adam(LR)
    state = opt.init(params)

    def loss_fn(p, x, y):
        seq, h, c = enc.apply(p["enc"], x)
        probs = dec.apply(p["dec"], seq[:, -1], initial_state=[h, c], constants=[seq], ground_truth=y, training=True)
        return cross_entropy(jnp, probs, y)

    @jax.jit
    def update(params, state, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    losses = []
    for x, y in data:
        params, state, loss = update(params, state, jnp.asarray(x), jnp.asarray(y))
        losses.append(float(loss))
        tick(losses[-1])
    return ({k: np.asarray(v) for k, v in params[part].items()} for part in ("enc", "dec")), losses


def train_torch(enc_model, dec_model, data, tick):
    import torch

    enc, dec = enc_model.lower("torch"), dec_model.lower("torch")
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=LR)
    losses = []
    for x, y in data:
        y = torch.from_numpy(y)
        seq, h, c = enc(torch.from_numpy(x))
        probs = dec(seq[:, -1], initial_state=[h, c], constants=[seq], ground_truth=y, training=True)
        loss = cross_entropy(torch, probs, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        tick(losses[-1])
    return (enc.get_weights(), dec.get_weights()), losses


def train_tensorflow(enc_model, dec_model, data, tick):
    from rshop_backends.keras import RecurrentLayer

    keras = keras_on_tensorflow()

    src, tgt = keras.Input(data[0][0].shape[1:]), keras.Input(data[0][1].shape[1:])
    enc, dec = RecurrentLayer(enc_model, name="encoder"), RecurrentLayer(dec_model, name="decoder")
    seq, h, c = enc(src)
    probs = dec(seq[:, -1], initial_state=[h, c], constants=[seq], ground_truth=tgt)  # fit: teacher-forced
    net = keras.Model([src, tgt], probs)
    net.compile(optimizer=keras.optimizers.Adam(LR, epsilon=1e-8), loss="categorical_crossentropy")
    record, log = keras_recorder(len(data), tick)
    feed = keras_feed([((x, y), y) for x, y in data])
    net.fit(feed, steps_per_epoch=len(data), epochs=1, callbacks=[record], verbose=0, shuffle=False)
    return (enc.get_rshop_weights(), dec.get_rshop_weights()), keras_losses(log)


TRAINERS = {"jax": train_jax, "torch": train_torch, "tensorflow": train_tensorflow}


def exact_match(enc_model, dec_model, weights, x, y) -> float:
    """Free-running decoding (own predictions fed back) on the numpy engine with the trained weights."""
    enc, dec = enc_model.lower("numpy"), dec_model.lower("numpy")
    enc.set_weights(weights[0])
    dec.set_weights(weights[1])
    seq, h, c = enc(x)
    probs = dec(seq[:, -1], initial_state=[h, c], constants=[seq])
    return float(np.mean(np.all(probs.argmax(-1) == y.argmax(-1), axis=1)))


def main(argv: list[str] | None = None) -> list[Result]:
    args = arguments(__doc__, 1500, argv)
    length, units = SIZES["smoke" if args.smoke else "full"]
    data = batches(lambda rng: sorting_task(rng, BATCH, length), args.steps, seed=0)
    x_test, y_test = sorting_task(np.random.default_rng(1), 512, length)
    print(f"sorting {length} digits: attention seq2seq, {units} units; a random guess is exact {0.1**length:.0e}")
    results = []
    for engine in args.engines:
        enc_model, dec_model = encoder_model(units, seed=0), decoder_model(units, length, seed=1)
        tick = progress(args.steps, engine, args.quiet)
        (weights, losses), seconds = timed(TRAINERS[engine], enc_model, dec_model, data, tick)
        acc = exact_match(enc_model, dec_model, list(weights), x_test, y_test)
        results.append(
            Result(
                "seq2seq_sort",
                engine,
                losses,
                "exact match",
                acc,
                seconds,
                ">= 0.9",
                acc >= 0.9,
                {"length": length, "units": units, "batch": BATCH, "lr": LR},
            )
        )
    finish("seq2seq_sort", f"sorting {length} digits, attention seq2seq", results, args, "cross-entropy")
    return results


if __name__ == "__main__":
    main()
