"""Write docs/flags.md, every flag of every command, from the commands' own parsers (built
from the one definition of every flag, config.py):

    python docs/flags.py > docs/flags.md

tests/test_house.py checks that docs/flags.md is what this prints, so the page cannot drift
from --help.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import cli
import dataloader
import evaluate
import play
import private_apis
import train
import train_progressive
import train_progressive_vaegan


def commands():
    """(command line, parser) of every command that takes flags."""
    return [
        ("python train_progressive.py", cli.make_parser(train_progressive.RECIPE)),
        ("python train_progressive_vaegan.py", cli.make_parser(train_progressive_vaegan.RECIPE)),
        ("python train.py", cli.make_parser(train.RECIPE)),
        ("python dataloader.py FOLDER", dataloader.make_parser()),
        ("python evaluate.py REAL_DIR GENERATED_DIR", evaluate.make_parser()),
        ("python play.py EXPORT", play.make_parser()),
    ]


def flag(action):
    """The flag as written on the command line, with its argument's name."""
    names = ", ".join(f"`{name}`" for name in action.option_strings)
    if action.nargs == 0:
        return names
    metavar = action.metavar or (action.dest.upper() if not action.choices else
                                 "{" + ",".join(map(str, action.choices)) + "}")
    if isinstance(metavar, tuple):
        metavar = " ".join(metavar)
    return f"{names} {metavar}"


def default(action):
    if action.nargs == 0 or action.default in (None, argparse.SUPPRESS):
        return ""
    return f"`{action.default}`"


def cell(text):
    return " ".join((text or "").split()).replace("|", "\\|")


def table(command, parser):
    lines = [f"## `{command}`", "", cell(parser.description), "",
             "| flag | default | what it does |", "|---|---|---|"]
    for action in private_apis.parser_actions(parser):
        if not action.option_strings or action.help == argparse.SUPPRESS:
            continue
        if action.dest == "help":
            continue
        lines.append(f"| {flag(action)} | {default(action)} | {cell(action.help)} |")
    return "\n".join(lines)


def render():
    head = ("# Every flag\n\nGenerated from the commands' parsers by `python docs/flags.py > "
            "docs/flags.md`; `--help` of each command says the same.\n")
    return "\n\n".join([head] + [table(command, parser) for command, parser in commands()]) \
        + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
