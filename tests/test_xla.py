"""--xla of the shared training step, on the CPU: the same losses, and a frozen stage's early
blocks kept bit-identical. XLA's CPU convolutions are slow, so it trains one step of a frozen
stage 2 at batch 2. (Its own file so that its runs' checkpoints, about 0.9 GB, are gone before
another file's are made: the suite once ran out of disk on CI.)
"""

import functools

import numpy as np
import pytest
from helpers import linked_stage_copy, losses, networks_of, weights
from helpers import run as run_main

import checkpoints
import runs
import train_progressive

run = functools.partial(run_main, train_progressive.main)


@pytest.fixture(scope="module")
def xla(module_tmp):
    """Stage 1 for one step, then frozen stage 2 grown from it for one step, with and
    without --xla (one XLA run: XLA is slow on a CPU)."""
    root = module_tmp / "xla"
    plain, compiled = str(root / "plain"), str(root / "compiled")
    code, out, err = run("--num_blocks", "1", "--max_steps", "1", "--checkpoint_dir", plain)
    assert code == 0, out + err
    linked_stage_copy(checkpoints.stage_dir(plain, 1), checkpoints.stage_dir(compiled, 1))
    logs = []
    for folder, flags in ((plain, []), (compiled, ["--xla"])):
        code, out, err = run("--num_blocks", "2", "--freeze_early_layers", "--max_steps", "1",
                             "--checkpoint_dir", folder, *flags)
        assert code == 0, out + err
        logs.append(out)
    return plain, compiled, *logs


def test_xla_gives_the_same_losses(xla):
    _, _, plain, compiled = xla
    assert ", XLA;" in compiled and ", XLA;" not in plain
    assert len(losses(plain)) == 1
    np.testing.assert_allclose(losses(compiled), losses(plain), rtol=1e-3, atol=1e-4)


def test_xla_trains_a_frozen_stage_with_early_blocks_bit_identical(xla):
    plain, compiled, _, log = xla
    assert "blocks 1..1 grown from stage 1" in log
    config1 = checkpoints.read_config(checkpoints.stage_dir(compiled, 1))
    config2 = checkpoints.read_config(checkpoints.stage_dir(compiled, 2, True))
    source = networks_of(checkpoints.latest_checkpoint(checkpoints.stage_dir(compiled, 1)), config1)
    trained = networks_of(checkpoints.latest_checkpoint(checkpoints.stage_dir(compiled, 2, True)), config2)
    without = networks_of(checkpoints.latest_checkpoint(checkpoints.stage_dir(plain, 2, True)), config2)
    fresh = runs.build_run(train_progressive.RECIPE, config2, "float32", None,
                                  seed=0).networks  # the new layers' initial weights
    for name in ("generator", "discriminator"):
        early = list(trained[name].early_blocks())
        before, after = weights(source[name], early), weights(trained[name], early)
        assert all(np.array_equal(before[k], after[k]) for k in before), name
        new = [n for n in trained[name].named_layers() if n not in early]
        start, end = weights(fresh[name], new), weights(trained[name], new)
        assert any(not np.array_equal(start[k], end[k]) for k in start), name
        # The same step without XLA: Adam moves a weight by at most ~1e-4 per update, so
        # round-off that flips a tiny gradient differs by at most the 5 updates' 5e-4.
        reference = weights(without[name], new)
        for key in end:
            np.testing.assert_allclose(end[key], reference[key], rtol=0, atol=5e-4)
