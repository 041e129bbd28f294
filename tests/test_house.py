"""The house rules of the code (docs/code_map.md): imports only downwards through the floors
with no circle, flags defined and read in one module, checkpoints made in one module,
generated docs in step with the code, no references to files outside the repository."""

import ast
import glob
import os
import re
import subprocess
import sys

from helpers import ROOT


def modules():
    """{name: path} of the project's modules (the top-level .py files)."""
    return {os.path.basename(path)[:-3]: path for path in glob.glob(os.path.join(ROOT, "*.py"))}


def parse(path):
    with open(path) as f:
        return ast.parse(f.read())


def calls(attribute):
    """{module: lines} of the project's modules calling something named `attribute`
    (x.attribute(...) or attribute(...))."""
    found = {}
    for name, path in modules().items():
        for node in ast.walk(parse(path)):
            if isinstance(node, ast.Call):
                called = node.func
                called = called.attr if isinstance(called, ast.Attribute) else \
                    getattr(called, "id", None)
                if called == attribute:
                    found.setdefault(name, []).append(node.lineno)
    return found


def test_flags_are_defined_parsed_and_read_in_config_alone():
    """Every flag is a field of config.py's dataclasses, parsed there into them: no other
    module adds an argument, parses a command line or reads a parsed namespace (args.x)."""
    assert set(calls("add_argument")) == {"config"}
    assert set(calls("parse_args")) == {"config"}
    namespace_reads = [(name, node.lineno) for name, path in modules().items()
                       for node in ast.walk(parse(path))
                       if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                       and node.value.id in ("args", "namespace")]
    assert namespace_reads == []


def test_checkpoints_are_made_and_managed_in_checkpoints_py_alone():
    assert set(calls("Checkpoint")) == {"checkpoints"}
    assert set(calls("CheckpointManager")) == {"checkpoints"}


def imports_of(path, names):
    """The project's modules that a module imports (at its top or inside functions)."""
    found = set()
    for node in ast.walk(parse(path)):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    return found & names


def floors():
    """{module: floor} from the table of docs/code_map.md."""
    with open(os.path.join(ROOT, "docs", "code_map.md")) as f:
        rows = re.findall(r"^\| (\d+) \| ([^|]+) \|", f.read(), flags=re.MULTILINE)
    return {module: int(floor) for floor, cell in rows
            for module in re.findall(r"`(\w+)`", cell)}


def test_every_module_has_a_floor_and_imports_only_downwards():
    mods, floor = modules(), floors()
    assert set(floor) == set(mods), "docs/code_map.md's floors must list every module"
    upward = [(name, other) for name, path in mods.items()
              for other in imports_of(path, set(mods) - {name}) if floor[other] > floor[name]]
    assert upward == []


def test_imports_have_no_circle():
    mods = modules()
    graph = {name: imports_of(path, set(mods) - {name}) for name, path in mods.items()}
    done, active = set(), []

    def visit(name):
        assert name not in active, " -> ".join(active[active.index(name):] + [name])
        if name in done:
            return
        active.append(name)
        for other in sorted(graph[name]):
            visit(other)
        active.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)


def test_low_floors_do_not_import_tensorflow_at_their_top():
    """Flag parsers, the data check, evaluate.py and a player read these before (or without)
    TensorFlow."""
    low = [name for name, floor in floors().items() if floor <= 4]
    for name in low:
        tree = parse(modules()[name])
        top = {alias.name.split(".")[0] for node in tree.body if isinstance(node, ast.Import)
               for alias in node.names}
        top |= {node.module.split(".")[0] for node in tree.body
                if isinstance(node, ast.ImportFrom) and node.module}
        assert not top & {"tensorflow", "keras"}, name


def test_parsing_the_flags_loads_no_tensorflow():
    """A bad flag is one fast line: the trainers import TensorFlow only after the flags."""
    script = (f"import sys; sys.path.insert(0, {ROOT!r}); import train_progressive, train, "
              f"train_progressive_vaegan, dataloader, evaluate, play; "
              f"print('tensorflow' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120, check=True)
    assert result.stdout.strip() == "False"


def test_flag_tables_are_the_parsers():
    result = subprocess.run([sys.executable, os.path.join(ROOT, "docs", "flags.py")],
                            capture_output=True, text=True, timeout=120, check=True)
    with open(os.path.join(ROOT, "docs", "flags.md")) as f:
        assert f.read() == result.stdout, "run: python docs/flags.py > docs/flags.md"


def test_no_reference_to_files_outside_the_repository():
    paths = [p for pattern in ("*.py", "*.md", "docs/*", "bench/*.py", "tests/*.py", "data/*")
             for p in glob.glob(os.path.join(ROOT, pattern)) if os.path.isfile(p)]
    outside = re.compile(r"\.\./shared|SPEC\.md|TF2_NOTES")
    found = []
    for path in paths:
        with open(path, errors="replace") as f:
            if outside.search(f.read()) and not path.endswith("test_house.py"):
                found.append(os.path.relpath(path, ROOT))
    assert found == []


def test_every_test_the_docs_name_exists():
    """docs/differences.md pins each behaviour with a named test: the name must be real."""
    defined = set()
    for path in glob.glob(os.path.join(ROOT, "tests", "test_*.py")):
        defined |= {node.name for node in ast.walk(parse(path))
                    if isinstance(node, ast.FunctionDef)}
    named = set()
    for path in glob.glob(os.path.join(ROOT, "docs", "*.md")):
        with open(path) as f:
            named |= set(re.findall(r"`(test_\w+)`", f.read()))
    assert named - defined == set()


def test_readme_is_short_and_links_every_docs_page():
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    assert len(readme.encode()) < 15_000
    pages = sorted(os.path.basename(p) for p in glob.glob(os.path.join(ROOT, "docs", "*.md")))
    assert [page for page in pages if f"docs/{page}" not in readme] == []
