"""The README's set-up commands are the ones CI and users run."""

import os
import re

from helpers import ROOT


def readme_commands():
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    setup = text.split("## Set-up: two commands", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```\n(.+?)\n```", setup)


def test_ci_runs_exactly_the_readme_test_command():
    main, tests = readme_commands()[:2]
    with open(os.path.join(ROOT, ".ci", "run")) as f:
        ci = [line for line in f.read().splitlines() if line and not line.startswith("#")]
    assert ci[-1] == tests
    assert "pytest" in tests and "train_progressive.py --data_dir data/demo" in main
