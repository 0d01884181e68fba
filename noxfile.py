"""The test matrix. Each engine's tests run in a venv holding ONLY that engine.

nox                      lint, tests for every engine, parity (with the docs' examples and keras), site, certify
nox -s certify           a plug-in engine certified from installed wheels with the shipped conformance suite
nox -s "tests(backend='jax')"
nox -s demo              train the flagship example on the default engine
nox -s bench             LSTM layer timings beside the native anchors
nox -s bench_long        memory and time per step at T = 100 ... 10,000 with and without remat
nox -s bench_parallel    time-parallel loops (scan, Newton) against sequential ones and hand-written anchors
nox -s bench_passes      default pass pipelines vs no passes, seq2seq first call, small-model settings
nox -s site              the documentation site (mkdocs, API reference from docstrings), built with --strict
nox -s fuzz_engines      differential fuzzing: 2000 generated models per engine against the float64 reference
nox -s examples          train the examples gallery in full on jax, torch and tensorflow (docs/examples.md)
nox -s gpu               the GPU check (bench/gpu.py): CUDA builds, conformance on CUDA, LSTM and time-parallel timings
"""

from __future__ import annotations

import shutil

import nox

nox.options.sessions = ["lint", "tests", "parity", "site", "certify"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

CONSTRAINTS = ("-c", "constraints.txt")
# what each engine needs beyond numpy; tensorflow-cpu: the CPU build, no CUDA libraries
ENGINE_PACKAGES = {"numpy": [], "jax": ["jax"], "torch": ["torch"], "tensorflow": ["tensorflow-cpu"]}
ALL = [p for ps in ENGINE_PACKAGES.values() for p in ps]
QUIET_TF = {"TF_CPP_MIN_LOG_LEVEL": "2"}
# what the examples gallery trains with on each engine (tests/test_examples_smoke.py runs it per engine):
# optax on jax, torch.optim on torch, Keras (a dependency of tensorflow) on tensorflow; tqdm for progress
EXAMPLE_PACKAGES = {"numpy": [], "jax": ["optax", "tqdm"], "torch": ["tqdm"], "tensorflow": ["tqdm"]}
# what each engine's serving formats need beyond the engine (tests/test_serving.py): ONNX comes through torch's
# exporter (onnxscript) and is checked with onnxruntime; jax.export serializes with flatbuffers (which tensorflow
# brings, jax does not); SavedModel needs nothing more
SERVING_PACKAGES = {
    "numpy": [],
    "jax": ["flatbuffers"],
    "torch": ["onnx", "onnxscript", "onnxruntime"],
    "tensorflow": [],
}
SERVING_ALL = [p for ps in SERVING_PACKAGES.values() for p in ps]
EXAMPLES = ("adding_long", "seq2seq_sort", "mingru_recall", "rhn_charlm")
# One pytest worker per core (pytest-xdist); a test file stays on one worker, so the layers a module
# compiles once (module-scoped fixtures, cached references) are compiled once, not once per worker.
PARALLEL = ("-n", "auto", "--dist", "loadfile")


def install(session, *packages):
    session.install(*CONSTRAINTS, "-e", ".[test]", *packages)


@nox.session(python="3.11")
@nox.parametrize("backend", list(ENGINE_PACKAGES))
def tests(session, backend):
    """Unit tests and the conformance suite with one engine installed; fails unless it ran alone."""
    install(session, *ENGINE_PACKAGES[backend], *EXAMPLE_PACKAGES[backend], *SERVING_PACKAGES[backend])
    env = {"RSHOP_BACKEND": backend, "RSHOP_TEST_ENGINES": backend, "RSHOP_EXPECT_ONLY": backend, **QUIET_TF}
    # the docs' examples run once, in ``parity``, where every engine they use is installed; the site's tests in ``site``
    elsewhere = ("--ignore=tests/test_docs.py", "--ignore=tests/test_site.py")
    session.run("python", "-m", "pytest", *PARALLEL, "tests", *elsewhere, *session.posargs, env=env)


KERAS_TESTS = (
    "tests/test_keras_integration.py",
    "tests/test_convert_keras.py",
    "tests/unit/test_migration_semantics.py",  # RecurrentLayer's refusals on every Keras backend
    "tests/test_keras_constraints.py",
    "tests/distributed/test_keras_data_parallel.py",  # keras.distribution.DataParallel on the jax backend
)


@nox.session(python="3.11")
def parity(session):
    """Every installed engine at once: compared pairwise, every Python example of README.md and docs/
    run, and the Keras 3 integration on every Keras backend (one environment with all engines serves
    them all: installing it is most of the time)."""
    install(session, *ALL, *SERVING_ALL, "keras")  # docs/serving.md runs every format
    tests = ("tests/conformance/test_parity.py", "tests/test_docs.py", *KERAS_TESTS)
    session.run("python", "-m", "pytest", *PARALLEL, *tests, *session.posargs, env=QUIET_TF)


@nox.session(python="3.11")
def certify(session):
    """The path a third-party engine takes (tests/test_plugin_engine.py): the rshop wheel and a tiny plug-in
    engine's wheel installed into a fresh venv, where ``pytest --pyargs rshop_backends.conformance`` runs for
    the plug-in and for numpy. About 25 s beyond the install, so it is in the default set."""
    install(session, "setuptools>=68")  # the wheels are built without build isolation: offline
    test = "tests/test_plugin_engine.py"
    session.run("python", "-m", "pytest", "-m", "certify", test, *session.posargs, env=QUIET_TF)


@nox.session(python="3.11")
def docs(session):
    """Only the examples of README.md and docs/ (the default set runs them in ``parity``)."""
    install(session, *ALL, *SERVING_ALL)
    session.run("python", "-m", "pytest", "tests/test_docs.py", *session.posargs, env=QUIET_TF)


@nox.session(python="3.11")
def keras(session):
    """Only the Keras 3 integration on every Keras backend, each in its own subprocess (the default set
    runs it in ``parity``)."""
    install(session, *ALL, "keras")
    session.run("python", "-m", "pytest", *PARALLEL, *KERAS_TESTS, *session.posargs, env=QUIET_TF)


@nox.session(python="3.11")
def lint(session):
    """ruff (rules and format) on every Python file; mypy on rshop_core and rshop_backends (its settings:
    pyproject.toml)."""
    session.install(*CONSTRAINTS, "ruff", "mypy", "numpy", "hypothesis", "pytest")  # mypy reads their annotations
    session.run("ruff", "check", "src", "tests", "examples", "bench", "noxfile.py", "site_hooks.py")
    session.run("ruff", "format", "--check", "src", "tests", "examples", "bench", "noxfile.py", "site_hooks.py")
    session.run("mypy")


@nox.session(python="3.11")
def demo(session):
    """Train the flagship example on the default engine, then a parity table over all engines."""
    session.install(*CONSTRAINTS, "-e", ".[test,examples]", *ALL)
    session.run("python", "examples/demo.py", *session.posargs, env=QUIET_TF)


@nox.session(python="3.11")
def bench(session):
    """LSTMCell layer timings on every engine beside the native anchors (see docs/benchmarks.md)."""
    install(session, *ALL)
    session.run("python", "bench/lstm_anchors.py", *session.posargs, env=QUIET_TF)


@nox.session(python="3.11")
def bench_long(session):
    """Long sequences with and without remat on jax, torch, tensorflow (writes docs/benchmarks-long.md)."""
    install(session, *ALL)
    session.run("python", "bench/remat.py", *session.posargs, env=QUIET_TF)


@nox.session(python="3.11")
def bench_parallel(session):
    """Time-parallel loops against sequential ones on jax, torch, tensorflow (docs/benchmarks-parallel.md)."""
    install(session, *ALL, "matplotlib")
    session.run("python", "bench/parallel.py", *session.posargs, env=QUIET_TF)


@nox.session(python="3.11")
def bench_passes(session):
    """Pass pipelines vs none per engine and cell, first jit of a seq2seq, tf.function and torch threads
    (each writes its table in docs/performance.md)."""
    install(session, *ALL)
    for script in ("bench/passes.py", "bench/first_call.py", "bench/small_models.py"):
        session.run("python", script, env=QUIET_TF)


# the CUDA builds bench/gpu.py needs, installed only where nvidia-smi is: torch's default Linux wheel bundles
# CUDA (the CPU wheel CI uses comes from the machines' own index); jax's CUDA 12 plugin; tensorflow's CUDA libraries
GPU_PACKAGES = ("torch", "jax[cuda12]")
GPU_TENSORFLOW = "tensorflow[and-cuda]"


@nox.session(python="3.11")
def gpu(session):
    """The GPU check in one go (bench/gpu.py; under ten minutes of GPU time by its budget, not in the default set): the
    conformance suite on CUDA for torch and jax (and tensorflow where its CUDA build installs) against the float64
    reference with TF32 off, the LSTM layer at W1 / W3 beside torch.nn.LSTM (cuDNN) and jax's hand scan, and the
    time-parallel minGRU; writes docs/benchmarks-gpu.md. Without nvidia-smi it installs the CPU builds and runs the
    script's dry run (the same code on the CPU at tiny sizes), so the session is checked on any machine."""
    if shutil.which("nvidia-smi") is None:
        session.log("no nvidia-smi: no CUDA here; the CPU builds and bench/gpu.py's dry run")
        install(session, *ALL)
        session.run("python", "bench/gpu.py", "--dry-run", *session.posargs, env=QUIET_TF)
        return
    session.run("nvidia-smi", external=True)
    install(session, *GPU_PACKAGES)
    # tensorflow's CUDA libraries may pin other versions than torch's: where they cannot install side by side,
    # bench/gpu.py finds no tensorflow and says so in the report
    session.run("python", "-m", "pip", "install", *CONSTRAINTS, GPU_TENSORFLOW, success_codes=[0, 1])
    session.run("python", "bench/gpu.py", "--require-cuda", *session.posargs, env=QUIET_TF)


@nox.session(python="3.11")
def site(session):
    """The documentation site (mkdocs.yml) into site/: the guide pages, README as the landing page and the API
    reference read from the sources' docstrings and type hints (statically: no engine is installed or imported).
    ``--strict``: a broken link or anchor, an unparsable docstring or a bad cross-reference fails the build."""
    # mkdocstrings lays out long signatures with ruff
    session.install(*CONSTRAINTS, "-e", ".[docs,test]", "ruff")
    session.run("mkdocs", "build", "--strict", *session.posargs, env={"NO_MKDOCS_2_WARNING": "1"})
    # what the site must hold, and that strict mode still catches a broken link, anchor or unlisted page
    session.run("python", "-m", "pytest", "tests/test_site.py", env={"RSHOP_BUILT_SITE": "site"})


@nox.session(python="3.11")
def fuzz_engines(session):
    """The engine fuzzer's long run: 2000 generated models per engine (CI runs 30 to 200 per engine in each
    ``tests`` session); ``nox -s fuzz_engines -- 5000`` another count, RSHOP_FUZZ_SEED another draw."""
    install(session, *ALL)
    count = session.posargs[0] if session.posargs else "2000"
    env = {"RSHOP_FUZZ_EXAMPLES": count, **QUIET_TF}
    test = "tests/conformance/test_engine_fuzz.py::test_engine_agrees_on_generated_models"
    # one worker per engine: the engines run side by side, not one after another as --dist loadfile would
    session.run("python", "-m", "pytest", "-n", "auto", "--dist", "load", test, env=env)


@nox.session(python="3.11")
def examples(session):
    """The examples gallery in full on jax, torch and tensorflow: loss curves in docs/examples/*.png and the
    results table of docs/examples.md (minutes per example and engine; not in the default set)."""
    install(session, *ALL, "keras", "optax", "tqdm", "matplotlib")
    for name in EXAMPLES:
        session.run("python", f"examples/{name}.py", "--plot", *session.posargs, env=QUIET_TF)
    session.run("python", "examples/_common.py", "table", env=QUIET_TF)
