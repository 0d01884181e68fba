"""The tensorflow engine: ``tf.Module`` layers whose loop is a ``tf.while_loop`` in ``tf.function``.

Importing it imports TensorFlow. To keep that import quiet it sets the environment
variable ``TF_CPP_MIN_LOG_LEVEL=2`` (hide TensorFlow's C++ INFO and WARNING lines, e.g. grappler's
"Not handling type DT_DOUBLE" on every float64 trace) *only if the user
has not set it*; nothing else global is changed.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from rshop_backends.engine import EngineSpec
from rshop_backends.tensorflow import layer, loop, ops, parallel  # after the log setting

NAME = "tensorflow"


# The default optimisation pipeline (rshop_core.passes): measured: see docs/benchmarks.md.
PASSES = ("cse", "fuse_matmuls", "licm")


ENGINE = EngineSpec(NAME, layer.TensorFlowLayer, ops, PASSES, parallel=parallel)
lower = ENGINE.lower


__all__ = ["ENGINE", "NAME", "PASSES", "lower", "layer", "loop", "ops", "parallel"]
