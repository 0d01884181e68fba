"""``rshop check`` / ``rshop explain`` on saved models: in-process (``cli.main``) and once as a subprocess.

What the CLI prints is checked against ``compare`` run directly on the same inputs (whose numbers
tests/unit/test_parity_api.py checks against the conformance helpers); exit codes 0, 1 and 2.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tests.conformance.cases import CASES, readme_model

from rshop_backends import cli, tolerances
from rshop_backends.parity import compare, random_inputs
from rshop_core import Input, RecurrentModel, load
from rshop_core.errors import RshopConfigError
from rshop_core.layers import Dense, Embedding

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """An attention step (a constant with a dimension of unknown size, two outputs, a returned state)."""
    path = tmp_path_factory.mktemp("cli") / "attention.rshop"
    CASES["attention"].build(return_sequences=True, return_states=True).save(path)
    return str(path)


@pytest.fixture(scope="module")
def saved_ids(tmp_path_factory):
    """A step reading int32 token ids through an Embedding of 5 rows."""
    ids, h = Input((), "int32"), Input((4,))
    h_new = Dense(4, activation="tanh")(Embedding(5, 3)(ids)) + h
    path = tmp_path_factory.mktemp("cli") / "ids.rshop"
    RecurrentModel(input=ids, initial_states=[h], output=h_new, final_states=[h_new], seed=1).save(path)
    return str(path)


def test_check_prints_compare_table(engine, saved, capsys):
    assert cli.main(["check", saved, "--engines", engine, "--batch", "3", "--time", "4", "--seed", "2"]) == 0
    out = capsys.readouterr().out
    model = load(saved)
    x, call = random_inputs(model, batch=3, steps=4, seed=2)
    assert call["constants"][0].shape == (3, 4, 8)  # the encoder's unknown length is --time
    assert out == compare(model, x, engines=[engine], **call).table() + "\n"
    assert "within tolerance" in out


def test_check_json_and_grads(trainable_engine, saved, capsys):
    assert cli.main(["check", saved, "--engines", trainable_engine, "--grads", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    model = load(saved)
    x, call = random_inputs(model, batch=2, steps=8, seed=0)
    assert got == compare(model, x, engines=[trainable_engine], grads=True, **call).to_dict()
    assert got["ok"] is True
    assert sorted(r["name"] for r in got["rows"] if r["kind"] == "grad") == sorted(model.params)


def test_check_int_inputs_get_valid_ids(engine, saved_ids, capsys):
    x, call = random_inputs(load(saved_ids), batch=4, steps=6, seed=0)
    assert x.dtype == np.int32 and x.shape == (4, 6) and call == {}
    assert x.min() >= 0 and x.max() < 5 and len(np.unique(x)) > 2
    assert cli.main(["check", saved_ids, "--engines", engine, "--batch", "4", "--time", "6"]) == 0
    assert "within tolerance" in capsys.readouterr().out


def test_check_exceeding_a_tolerance_exits_1(engine, saved, capsys, monkeypatch):
    monkeypatch.setitem(tolerances.FORWARD_ATOL, "float32", 0.0)
    assert cli.main(["check", saved, "--engines", engine]) == 1
    out = capsys.readouterr().out
    assert f"  {engine:<11} output_0" in out and "NO" in out
    assert "3 of 3 results exceed their limit" in out


def test_check_inputs_npz(engine, saved, tmp_path, capsys):
    rng = np.random.default_rng(3)
    x, enc, h0 = rng.standard_normal((2, 5, 4)), rng.standard_normal((2, 7, 8)), rng.standard_normal((2, 8))
    path = tmp_path / "in.npz"
    np.savez(path, x=x, constants_0=enc, initial_state_0=h0)
    assert cli.main(["check", saved, "--engines", engine, "--inputs", str(path)]) == 0
    want = compare(load(saved), x, engines=[engine], constants=[enc], initial_state=[h0]).table()
    assert capsys.readouterr().out == want + "\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["check", "missing.rshop"], "missing.rshop: expected a readable .rshop file, received an error"),
        (["check", "{model}", "--engines", "nope"], "engine: expected one of ["),
        (["check", "{model}", "--engines", " , "], "--engines: expected comma-separated engine names, received ' , '."),
        (["check", "{model}", "--inputs", "{npz}"], "expected keys x, constants_<i>, initial_state_<i>, mask, "),
        (["check", "{model}", "--time", "0"], "steps: expected an int >= 1, received 0."),
    ],
)
def test_check_errors_exit_2(saved, tmp_path, capsys, argv, message):
    npz = tmp_path / "bad.npz"
    np.savez(npz, x=np.zeros((2, 3, 4)), constant_0=np.zeros((2, 7, 8)))  # misspelt: constants_0
    assert cli.main([a.format(model=saved, npz=npz) for a in argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("rshop: ") and message in captured.err


def test_npz_lists_must_be_numbered_from_0(tmp_path):
    path = tmp_path / "gap.npz"
    np.savez(path, x=np.zeros((1, 2, 3)), constants_1=np.zeros(1))
    with pytest.raises(RshopConfigError, match=r"expected constants_0 \.\.\. constants_0, received indices \[1\]"):
        cli.load_inputs(str(path))


def test_random_inputs_of_a_decoder():
    x, call = random_inputs(readme_model(decode=True, output_length=3), batch=2, steps=5)
    assert x.shape == (2, 5) and x.dtype == np.float64 and call == {}


def test_explain_prints_the_engines_plan(engine, saved, capsys):
    assert cli.main(["explain", saved, "--engine", engine]) == 0
    assert capsys.readouterr().out == str(load(saved).explain(engine)) + "\n"


def test_check_as_a_subprocess(saved):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    cmd = [sys.executable, "-m", "rshop_backends.cli", "check", saved, "--engines", "numpy", "--json"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] is True and [r["name"] for r in report["rows"]] == ["output_0", "output_1", "h"]
    bad_cmd = [*cmd[:-2], "nope"]  # --engines nope
    bad = subprocess.run(bad_cmd, capture_output=True, text=True, env=env, timeout=120, check=False)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.startswith("rshop: engine: expected one of [") and "received 'nope'" in bad.stderr
