"""Make the project's flat modules importable from tests/, keep TensorFlow quiet, and keep the
suite's disk and memory use small."""

import os
import shutil
import sys
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from private_apis import custom_gradients_released

# The whole suite's peak disk use in the temporary folder, measured alone by
# bench/suite_disk.py (BENCHMARKS.md): checkpoints are hundreds of MB.
SUITE_PEAK_GB = 3.6


def pytest_sessionstart(session):
    """A line at the top of the output where the temporary folder has too little free space:
    CI once ran out of disk part-way, which showed as dozens of unrelated-looking errors."""
    if hasattr(session.config, "workerinput"):  # a pytest-xdist worker: the main one says it
        return
    folder = tempfile.gettempdir()
    free = shutil.disk_usage(folder).free / 1e9
    if free < SUITE_PEAK_GB:
        session.config.pluginmanager.get_plugin("terminalreporter").write_line(
            f"warning: {free:.1f} GB free in {folder}, but the whole suite needs about "
            f"{SUITE_PEAK_GB:g} GB there at its peak: tests that save checkpoints will fail "
            f"with 'No space left on device'", yellow=True, bold=True)


@pytest.fixture(scope="module")
def module_tmp(tmp_path_factory, request):
    """A folder for one module's shared training runs, removed when the module is done.

    At the report's width a checkpoint of even stage 1 is 394 MB (block 1's 1024 x 512 x 25
    kernels, twice, with Adam's two slots each, and the moving average); the tiny runs are
    an eighth as wide (helpers.NARROW, a few MB), but runs kept to the end of the suite
    would still add up.
    Per-test tmp_path folders are removed as each test passes (pytest.ini).
    """
    path = tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def conv_forms_cache_removed():
    """The suite's shared --conv_forms timings go when it ends."""
    from helpers import CONV_FORMS_CACHE
    yield
    if os.path.exists(CONV_FORMS_CACHE):
        os.remove(CONV_FORMS_CACHE)


@pytest.fixture(scope="module", autouse=True)
def module_graphs_released():
    """Free, when a module is done, the graphs of the iterations its tests built directly
    (runs.build_run, not through a trainer's command, which frees its own)."""
    with custom_gradients_released():
        yield


# Module fixtures that train: every test using one is slow.
TRAINING_FIXTURES = {"chain", "trained", "two_devices", "xla", "progressive", "wavegan", "ada_run",
                     "iteration", "source"}


# The files that train most, the longest first (by the sums of `pytest --durations=0` per
# file): pytest-xdist hands out whole files roughly in the order they are collected, so these
# start first and the two workers end nearer together (the longest-first rule of scheduling;
# the suite's total time is in BENCHMARKS.md).
LONGEST_FILES = ("test_train_progressive.py", "test_export.py", "test_variants.py",
                 "test_distribute.py", "test_vaegan.py", "test_training_runs.py",
                 "test_watch.py", "test_bench.py", "test_conditioning.py", "test_grow.py",
                 "test_small_collections.py", "test_wavegan.py", "test_model_progressive.py",
                 "test_evaluate.py", "test_xla.py", "test_listening_room.py")


def pytest_collection_modifyitems(items):
    """Mark `slow` what trains through a shared fixture; tests that train themselves carry
    @pytest.mark.slow. The fast lane is `pytest -m "not slow"`. The longest files first."""
    for item in items:
        if TRAINING_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
    rank = {name: index for index, name in enumerate(LONGEST_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: in-file order
