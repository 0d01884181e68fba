"""The examples gallery (examples/*.py) for a few steps at smoke sizes, on the engine under test.

Each example trains on the engines of ``RSHOP_TEST_ENGINES`` (numpy is inference-only and is skipped,
saying so), with its ecosystem's own optimizer: optax on jax, torch.optim on torch, Keras' ``Model.fit`` on
tensorflow. A test checks two things: the first step's loss is the loss of the initial model on the first
batch as the numpy float64 engine and a numpy formula compute it (the engine trains the model it was
given, from the weights every engine shares), and the loss falls over the run.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
STEPS = {"adding_long": 20, "seq2seq_sort": 30, "mingru_recall": 40, "rhn_charlm": 20}
# what each engine trains with, beyond the engine itself
TOOLS = {"jax": ["optax", "tqdm"], "torch": ["tqdm"], "tensorflow": ["keras", "tqdm"]}


def example(name: str):
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    return importlib.import_module(name)


@pytest.fixture
def engine_tools(trainable_engine):
    missing = [t for t in TOOLS[trainable_engine] if importlib.util.find_spec(t) is None]
    if missing:
        pytest.skip(f"the examples train on {trainable_engine} with {', '.join(missing)}, which is not installed")
    if trainable_engine == "tensorflow" and "keras" in sys.modules:
        import keras

        if keras.backend.backend() != "tensorflow":
            pytest.skip(f"Keras was started on {keras.backend.backend()!r} in this process; fit needs tensorflow")
    return trainable_engine


def run(name: str, engine: str) -> list:
    return example(name).main(["--engine", engine, "--smoke", "--steps", str(STEPS[name]), "--quiet"])


def falls(losses: list[float], k: int = 5) -> bool:
    return float(np.mean(losses[-k:])) < float(np.mean(losses[:k]))


def first_batch(make) -> tuple:
    return make(np.random.default_rng(0))  # the scripts draw their batches from default_rng(0), in order


def test_adding_long(engine_tools):
    mod = example("adding_long")
    length, units = mod.SIZES["smoke"]
    x, y = first_batch(lambda rng: mod.adding_problem(rng, mod.BATCH, length))
    results = run("adding_long", engine_tools)
    assert [r.example for r in results] == ["adding_lstm", "adding_janet"]
    for r, build in zip(results, (mod.lstm_model, mod.janet_model)):
        ref = build(units, seed=0).lower("numpy", "float64")(x.astype(np.float64))
        np.testing.assert_allclose(r.losses[0], np.mean((ref - y) ** 2), rtol=1e-4)
        assert len(r.losses) == STEPS["adding_long"] and falls(r.losses), (r.example, r.losses)
        assert np.isfinite(r.metric)


def test_seq2seq_sort(engine_tools):
    mod = example("seq2seq_sort")
    length, units = mod.SIZES["smoke"]
    x, y = first_batch(lambda rng: mod.sorting_task(rng, mod.BATCH, length))
    enc = mod.encoder_model(units, seed=0).lower("numpy", "float64")
    dec = mod.decoder_model(units, length, seed=1).lower("numpy", "float64")
    seq, h, c = enc(x.astype(np.float64))
    probs = dec(seq[:, -1], initial_state=[h, c], constants=[seq], ground_truth=y.astype(np.float64), training=True)
    want = -np.mean(np.sum(y * np.log(np.clip(probs, 1e-7, 1 - 1e-7)), -1))
    (r,) = run("seq2seq_sort", engine_tools)
    np.testing.assert_allclose(r.losses[0], want, rtol=1e-4)
    assert falls(r.losses), r.losses
    assert 0.0 <= r.metric <= 1.0


def test_mingru_recall(engine_tools):
    mod = example("mingru_recall")
    length, units, _ = mod.SIZES["smoke"]
    x, y = first_batch(lambda rng: mod.recall_task(rng, mod.BATCH, length))
    model = mod.mingru_model(units, length, seed=0)
    assert model.get_weights()["mingru/bias"][:units] == pytest.approx(-np.log(length))  # chrono-initialised gate
    ref = model.lower("numpy", "float64")(x.astype(np.float64))
    (r,) = run("mingru_recall", engine_tools)
    np.testing.assert_allclose(r.losses[0], np.mean((ref - y) ** 2), rtol=1e-4)
    assert falls(r.losses), r.losses
    assert model.lower(engine_tools).explain().time.startswith("associative scan")  # trained with the parallel loop


def test_rhn_charlm(engine_tools):
    mod = example("rhn_charlm")
    units, depth, embed, length = mod.SIZES["smoke"]
    ids = mod.encode(mod.TEXT)
    x, y = first_batch(lambda rng: mod.windows(ids[: int(0.9 * len(ids))], rng, mod.BATCH, length))
    logits = mod.rhn_model(len(mod.CHARS), units, depth, embed, seed=0).lower("numpy", "float64")(x)
    logp = mod.log_softmax(logits)
    want = -np.mean(np.take_along_axis(logp, y[..., None], -1)) / np.log(2.0)  # bits per character
    (r,) = run("rhn_charlm", engine_tools)
    np.testing.assert_allclose(r.losses[0], want, rtol=1e-4)
    assert falls(r.losses), r.losses
    assert 0.0 < r.metric < 8.0


def test_sampling_carries_the_state():
    """rhn_charlm's sampler (one character per call, the state carried) equals one call on the whole text."""
    mod = example("rhn_charlm")
    units, depth, embed, _ = mod.SIZES["smoke"]
    model = mod.rhn_model(len(mod.CHARS), units, depth, embed, seed=0)
    ids = mod.encode("Alice was")
    whole = model.lower("numpy", "float64")(ids[None])[0, -1]
    from rshop_core import RecurrentModel

    stepper = RecurrentModel.clone(model, "s", return_sequences=False, return_states=True).lower("numpy", "float64")
    logits, s = stepper(ids[None, :1])
    for i in ids[1:]:
        logits, s = stepper(np.array([[i]], np.int32), initial_state=[s])
    np.testing.assert_allclose(logits[0], whole, atol=1e-12)
    text = mod.sample(model, model.get_weights(), "Alice ", 15)
    assert text.startswith("Alice ") and len(text) == 21 and set(text) <= set(mod.CHARS)
