"""The .rshop format: round trips, strictness, the hostile corpus, and a seeded mutation fuzzer."""

from __future__ import annotations

import copy
import io
import json
import os
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

import rshop_core
from rshop_core import Bidirectional, serialization
from rshop_core.cells import GRUCell, LSTMCell
from rshop_core.errors import RshopFormatError

HOSTILE = sorted((Path(__file__).parents[1] / "data" / "hostile").glob("*.rshop"))


def members(raw):
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        return json.loads(zf.read("model.json")), zf.read("weights.safetensors")


def repack(doc_bytes, weights):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("model.json", doc_bytes)
        zf.writestr("weights.safetensors", weights)
    return buf.getvalue()


def test_round_trip_keeps_everything(tmp_path):
    model = LSTMCell(4, input_dim=3).get_layer(seed=1, return_sequences=True)
    w = {k: v + 0.5 for k, v in model.get_weights().items()}
    model.set_weights(w)
    loaded = rshop_core.load(model.save(tmp_path / "m.rshop"))
    assert loaded.to_json() == model.to_json()
    for k in w:
        np.testing.assert_array_equal(loaded.get_weights()[k], w[k])


def test_weights_member_is_standard_safetensors():
    """Our writer's output reads with the reference safetensors package (when installed)."""
    st = pytest.importorskip("safetensors.numpy")
    model = GRUCell(3, input_dim=2).get_layer(seed=0)
    _, weights = members(serialization.dumps(model))
    got = st.load(weights)
    for k, v in model.get_weights().items():
        np.testing.assert_array_equal(got[k], v)


def test_newer_version_is_refused_clearly():
    doc, weights = members(serialization.dumps(GRUCell(3, input_dim=2).get_layer(seed=0)))
    doc["version"] = serialization.VERSION + 1
    with pytest.raises(RshopFormatError, match=r"written by a newer rshop\. Upgrade rshop to load it"):
        serialization.loads(repack(json.dumps(doc).encode(), weights))


@pytest.mark.parametrize("path", HOSTILE, ids=lambda p: p.stem)
def test_hostile_corpus_is_refused(path, capsys):
    with pytest.raises(RshopFormatError):
        rshop_core.load(path)
    assert "must never run" not in capsys.readouterr().out


def test_hostile_corpus_is_complete():
    assert len(HOSTILE) >= 20


# -- the mutation fuzzer ---------------------------------------------------------------
def bases():
    from tests.conformance.cases import CASES
    from tests.conformance.composition_cases import FEATURES

    models = [
        CASES["attention"].build(),
        CASES["two_state_custom"].build(),
        Bidirectional(GRUCell(3, input_dim=2).get_layer(seed=0, return_sequences=True)),
    ]
    for name in ("teacher_forcing", "decode", "nested", "state_initializers", "dropout_training", "state_sync"):
        build, opts, _, _ = FEATURES[name]
        models.append(build(**opts))
    return [serialization.dumps(m) for m in models]


WEIRD = [
    None,
    True,
    False,
    -1,
    0,
    1,
    2**31,
    2**64,
    -(2**63),
    1e308,
    0.5,
    "",
    "x",
    "float64",
    "bool",
    "input",
    "param",
    "constant",
    "glorot_uniform",
    [],
    {},
    [[[]]],
    [None],
    [-1],
    [0, 0],
    {"name": "zeros"},
    "a" * 5000,
    # issue #9 classes: bad names, equations, loop options and shapes past the limits
    "a.b",
    "h\ud800",
    "x\x1b",
    "lstm.cell/kernel",
    "aβ,β->a",
    "ab,b->a->a",
    129,
    1_000_000,
    [2**31],
    [8192, 8192],
    [0] * 70_000,
]


def paths(v, prefix=()):
    yield prefix
    if isinstance(v, dict):
        for k, x in v.items():
            yield from paths(x, prefix + (k,))
    elif isinstance(v, list):
        for i, x in enumerate(v):
            yield from paths(x, prefix + (i,))


def mutate_doc(doc, rng):
    doc = copy.deepcopy(doc)
    all_paths = [p for p in paths(doc) if p]
    for _ in range(int(rng.integers(1, 4))):
        p = all_paths[int(rng.integers(len(all_paths)))]
        parent = doc
        try:
            for k in p[:-1]:
                parent = parent[k]
            key = p[-1]
            roll = rng.random()
            if roll < 0.15 and isinstance(parent, dict):
                parent.pop(key, None)
            elif roll < 0.25 and isinstance(parent, dict):
                parent["injected_" + str(int(rng.integers(100)))] = WEIRD[int(rng.integers(len(WEIRD)))]
            elif roll < 0.35 and isinstance(parent[key], (int, float)) and not isinstance(parent[key], bool):
                parent[key] = parent[key] + int(rng.integers(-3, 4))
            elif roll < 0.45:  # a subtree from elsewhere in the document
                other = all_paths[int(rng.integers(len(all_paths)))]
                src = doc
                for k in other:
                    src = src[k]
                parent[key] = copy.deepcopy(src)
            else:
                parent[key] = copy.deepcopy(WEIRD[int(rng.integers(len(WEIRD)))])
        except (KeyError, IndexError, TypeError):
            pass  # the path vanished under an earlier mutation
    return json.dumps(doc).encode()


def mutate_bytes(raw, rng):
    raw = bytearray(raw)
    roll = rng.random()
    if roll < 0.3 and raw:
        for _ in range(int(rng.integers(1, 8))):
            raw[int(rng.integers(len(raw)))] = int(rng.integers(256))
    elif roll < 0.5:
        raw = raw[: int(rng.integers(len(raw) + 1))]
    elif roll < 0.7:
        at = int(rng.integers(len(raw) + 1))
        raw[at:at] = bytes(rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8))
    else:  # splice: duplicate a random slice
        a = int(rng.integers(len(raw) + 1))
        b = min(len(raw), a + int(rng.integers(1, 256)))
        raw[a:a] = raw[a:b]
    return bytes(raw)


def hostile_zip(doc, weights, rng):
    """The zip-level classes of issue #9: padded or lying model.json, lying or bombed weights."""
    from tests.data.make_hostile_corpus import deflated, lie_about_size

    raw = json.dumps(doc).encode()
    roll = rng.random()
    if roll < 0.25:  # padding past the JSON cap
        return deflated(raw + b" " * (serialization.MAX_JSON_BYTES + int(rng.integers(-64, 64))), weights)
    if roll < 0.5:  # weights followed by zeros, the zip declaring the honest size
        return lie_about_size(
            deflated(raw, weights + bytes(int(rng.integers(1, 2**22)))), "weights.safetensors", len(weights)
        )
    if roll < 0.75:  # a declared size off by a little
        return lie_about_size(deflated(raw, weights), "weights.safetensors", len(weights) + int(rng.integers(-9, 9)))
    return lie_about_size(deflated(raw, weights), "model.json", int(rng.integers(0, 2**32)))


def fuzz_case(base, rng):
    doc, weights = members(base)
    kind = rng.random()
    if kind < 0.05:
        return hostile_zip(doc, weights, rng)
    if kind < 0.55:
        return repack(mutate_doc(doc, rng), weights)
    if kind < 0.7:
        return repack(mutate_bytes(json.dumps(doc).encode(), rng), weights)
    if kind < 0.85:
        return repack(json.dumps(doc).encode(), mutate_bytes(weights, rng))
    return mutate_bytes(base, rng)


def test_mutation_fuzzer(request):
    """Every mutated file loads or raises RshopFormatError — nothing else — each within a second."""
    if "numpy" not in request.config.rshop_engines:  # reading a file touches no engine: run it once per matrix
        pytest.skip("the format fuzzer is engine-independent: the run that includes numpy runs it")
    count = int(os.environ.get("RSHOP_FUZZ_COUNT", "10000"))
    seed = int(os.environ.get("RSHOP_FUZZ_SEED", "20261127"))
    rng = np.random.default_rng(seed)
    base = bases()
    loaded = refused = 0
    slowest = 0.0
    started = time.perf_counter()
    for i in range(count):
        data = fuzz_case(base[i % len(base)], rng)
        t = time.perf_counter()
        try:
            serialization.loads(data, f"fuzz case {i}")
            loaded += 1
        except RshopFormatError:
            refused += 1
        except Exception as e:  # the point: nothing else may escape
            pytest.fail(f"fuzz case {i} (seed {seed}) raised {type(e).__name__}: {e}")
        slowest = max(slowest, time.perf_counter() - t)
    elapsed = time.perf_counter() - started
    request.config.rshop_reports.append(
        f"rshop fuzzer: {count} mutations (seed {seed}) in {elapsed:.1f} s: {refused} refused, {loaded} loaded; "
        f"slowest case {slowest * 1e3:.1f} ms"
    )
    assert slowest < 1.0
    assert refused > count // 2  # the mutations really break things
