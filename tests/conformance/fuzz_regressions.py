"""Shrunk counterexamples of the engine fuzzer (``rshop_backends.fuzzing``), run on every engine, always.

Each entry: a name, what went wrong, and the recipe hypothesis shrank it to (``build_case(recipe)``
rebuilds the model and its call). Add one with every fix of a fuzzer finding.
"""

from __future__ import annotations

from typing import Any

REGRESSIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "hoist_inputs_zero_output_mask": (
        "torch failed to lower (RshopConfigError: node 'reshape' expected 1 inputs, received 0): with "
        "zero_output_for_mask the masked output where(mask, y, 0) reads only x-derived values, so "
        "hoist_inputs took it into the time-parallel part without the reshaped mask it reads",
        {
            "input_dim": 2,
            "states": [[2]],
            "constants": [],
            "readout": False,
            "output_dim": 1,
            "steps": [["negative", 0, 0, 0]],
            "heads": [0, 2],
            "options": {
                "go_backwards": False,
                "return_sequences": False,
                "return_states": False,
                "zero_output_for_mask": True,
            },
            "masking": "mask",
            "time": 2,
            "given_states": False,
            "batch": 2,
            "seed": 0,
        },
    ),
    "selu_of_a_zero_bias_state": (
        "a fuzzer fault, not an engine's: with zero Dense biases a zero state stays exactly 0 and selu's "
        "kink there made the central difference straddle it; the fuzzer's Dense layers now draw their biases",
        {
            "input_dim": 2,
            "states": [[2]],
            "constants": [],
            "readout": False,
            "output_dim": 1,
            "steps": [["selu", 1, 0, 0]],
            "heads": [1, 2],
            "options": {
                "go_backwards": False,
                "return_sequences": False,
                "return_states": False,
                "decode": True,
                "output_length": 2,
            },
            "masking": None,
            "time": 2,
            "given_states": False,
            "batch": 2,
            "seed": 0,
        },
    ),
}
