"""The floors of docs/architecture.md hold: no part of birdgen_ray imports a part on a higher floor,
parts on one floor import each other without a cycle, and the doc's table names exactly the parts
that exist. And every function of the package fits: at most 100 lines, at most 5 blocks deep."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "birdgen_ray"
DOC = REPO / "docs" / "architecture.md"


MAX_FUNCTION_LINES = 100
MAX_BLOCK_DEPTH = 5  # blocks (if, for, while, try, with, match, def, class) inside a function, one in another


def floors_in_doc(doc: str | None = None) -> dict[str, int]:
    """part -> floor, from the table between the <!-- floors --> markers."""
    table = (doc if doc is not None else DOC.read_text()).split("<!-- floors -->")[1].split("<!-- /floors -->")[0]
    floors = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and cells[0].isdigit():
            for part in re.findall(r"`(\w+)`", cells[1]):
                floors[part] = int(cells[0])
    return floors


def part_of(module: str) -> str | None:
    """'birdgen_ray.generate.engine' -> 'generate'; None for the package itself or other packages."""
    names = module.split(".")
    return names[1] if names[0] == "birdgen_ray" and len(names) > 1 else None


def imports_of(path: Path, root: Path = REPO) -> list[tuple[int, str]]:
    """(line, module) for every import in the file, function-level ones included."""
    module = ".".join(path.relative_to(root).with_suffix("").parts)
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = module.split(".")[: -node.level]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            # `from birdgen_ray import generate` imports a part by name
            if target == "birdgen_ray":
                found += [(node.lineno, f"birdgen_ray.{alias.name}") for alias in node.names]
    return found


def modules(package: Path = PACKAGE) -> list[Path]:
    return sorted(package.rglob("*.py"))


def parts_in(package: Path = PACKAGE) -> set[str]:
    """The package's parts: its modules and subpackages."""
    parts = {
        p.stem if p.is_file() else p.name
        for p in package.iterdir()
        if p.suffix == ".py" or (p / "__init__.py").exists()
    }
    parts.discard("__init__")
    return parts


def table_mismatch(floors: dict[str, int], parts: set[str]) -> list[str]:
    missing, extra = sorted(parts - set(floors)), sorted(set(floors) - parts)
    return [f"parts without a floor in {DOC.name}: {missing}"] * bool(missing) + [
        f"{DOC.name} names parts that do not exist: {extra}"
    ] * bool(extra)


def same_floor_cycle(package: Path, floors: dict[str, int]) -> list[str]:
    """A cycle of imports between parts on one floor (part -> part ...), or [] when there is none."""
    graph: dict[str, set[str]] = {part: set() for part in floors}
    for path in modules(package):
        own = part_of(".".join(path.relative_to(package.parent).with_suffix("").parts))
        for _, target in imports_of(path, root=package.parent):
            other = part_of(target)
            if own and other and other != own and floors.get(other) == floors.get(own):
                graph[own].add(other)
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as cycle:
        return list(cycle.args[1])
    return []


def _bodies(node: ast.stmt):
    """The blocks a compound statement holds; an elif is a block of its `if`, not one inside it."""
    if isinstance(node, ast.If):
        yield node.body
        if len(node.orelse) == 1 and isinstance(node.orelse[0], ast.If):
            yield from _bodies(node.orelse[0])
        elif node.orelse:
            yield node.orelse
        return
    if isinstance(node, ast.Match):
        yield from (case.body for case in node.cases)
        return
    yield from (getattr(node, name) for name in ("body", "orelse", "finalbody") if getattr(node, name, None))
    yield from (handler.body for handler in getattr(node, "handlers", []))


def block_depth(statements: list[ast.stmt]) -> int:
    """How many blocks deep the statements go: 0 for straight-line code."""
    return max((1 + block_depth(body) for s in statements if hasattr(s, "body") for body in _bodies(s)), default=0)


def oversized_functions(package: Path = PACKAGE) -> list[str]:
    found = []
    for path in modules(package):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines, depth = node.end_lineno - node.lineno + 1, block_depth(node.body)
                if lines > MAX_FUNCTION_LINES or depth > MAX_BLOCK_DEPTH:
                    where = f"{path.relative_to(package.parent)}:{node.lineno}"
                    found.append(f"{where} {node.name}(): {lines} lines, {depth} blocks deep")
    return found


def test_the_doc_names_floors_for_every_part_and_no_other():
    floors = floors_in_doc()
    assert set(floors.values()) == {1, 2, 3, 4, 5, 6}
    assert table_mismatch(floors, parts_in()) == []


def test_parts_on_one_floor_import_each_other_without_a_cycle():
    cycle = same_floor_cycle(PACKAGE, floors_in_doc())
    assert not cycle, "import cycle between parts of one floor: " + " -> ".join(cycle)


def test_every_function_fits():
    oversized = oversized_functions()
    assert not oversized, "\n".join(oversized)


def test_no_part_imports_a_higher_floor():
    floors = floors_in_doc()
    violations = []
    for path in modules():
        own = part_of(".".join(path.relative_to(REPO).with_suffix("").parts))
        if own is None:  # birdgen_ray/__init__.py: lazy, imports by name only
            continue
        for line, target in imports_of(path):
            other = part_of(target)
            if other and other != own and floors.get(other, 0) > floors[own]:
                where = f"{path.relative_to(REPO)}:{line}"
                violations.append(f"{where}: {own} (floor {floors[own]}) imports {target} (floor {floors[other]})")
    assert not violations, "\n".join(violations)


def test_the_checker_sees_an_upward_import(tmp_path):
    """The check itself can fail: a floor-3 module importing the CLI is caught, relative imports too."""
    fake = tmp_path / "birdgen_ray" / "generate"
    fake.mkdir(parents=True)
    (fake / "bad.py").write_text("def f():\n    from ..cli import options\n    import birdgen_ray.schedule.runner\n")
    found = [target for _, target in imports_of(fake / "bad.py", root=tmp_path)]
    assert found == ["birdgen_ray.cli", "birdgen_ray.schedule.runner"]
    floors = floors_in_doc()
    assert all(floors[part_of(t)] > floors["generate"] for t in found)


def _fake_package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / "birdgen_ray" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "birdgen_ray" / name).write_text(text)
    return root / "birdgen_ray"


def test_the_checker_sees_a_cycle_on_one_floor(tmp_path):
    """report -> export -> report (both floor 5) is caught, a function-level import too; one way is fine."""
    files = {
        "__init__.py": "",
        "report/__init__.py": "",
        "report/page.py": "from birdgen_ray.export import birdclef\n",
        "export/__init__.py": "",
        "export/birdclef.py": "def f():\n    from ..report import page\n",
    }
    package = _fake_package(tmp_path, files)
    assert sorted(same_floor_cycle(package, floors_in_doc())) == ["export", "report", "report"]
    (package / "export" / "birdclef.py").write_text("def f():\n    pass\n")
    assert same_floor_cycle(package, floors_in_doc()) == []


def test_the_checker_sees_a_part_missing_from_the_table_and_one_too_many(tmp_path):
    package = _fake_package(tmp_path, {"__init__.py": "", "config.py": "", "gadgets/__init__.py": ""})
    floors = floors_in_doc("<!-- floors -->\n| 1 | `config`, `io` | x |\n<!-- /floors -->")
    assert table_mismatch(floors, parts_in(package)) == [
        "parts without a floor in architecture.md: ['gadgets']",
        "architecture.md names parts that do not exist: ['io']",
    ]


def test_the_checker_sees_a_long_function_and_a_deep_one(tmp_path):
    deep = "def deep(x):\n" + "".join("    " * (i + 1) + f"if x > {i}:\n" for i in range(6)) + "    " * 7 + "pass\n"
    fits = "def fits(x):\n" + "".join("    " * (i + 1) + f"for _ in x{i}:\n" for i in range(5)) + "    " * 6 + "pass\n"
    long = "def long():\n" + "    x = 1\n" * 100
    chain = "def chain(x):\n    if x:\n        pass\n" + "    elif x:\n        pass\n" * 20  # an elif is no deeper
    package = _fake_package(tmp_path, {"a.py": deep + fits + long + chain})
    assert oversized_functions(package) == [
        "birdgen_ray/a.py:1 deep(): 8 lines, 6 blocks deep",
        "birdgen_ray/a.py:16 long(): 101 lines, 0 blocks deep",
    ]


@pytest.mark.slow  # a fresh interpreter imports torch
def test_config_engine_queue_and_renderers_load_neither_fsspec_pyarrow_nor_soundfile():
    """The engine reads no files but references (io.recordings, imported on the first one)."""
    code = (
        "import sys, birdgen_ray.config, birdgen_ray.generate.engine, birdgen_ray.generate.take_queue, "
        "birdgen_ray.generate.renderer, birdgen_ray.generate.renderers.audioldm2, "
        "birdgen_ray.generate.renderers.stable_audio; "
        "print(sorted(m for m in ('fsspec', 'pyarrow', 'soundfile') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_lazy_package_still_serves_its_readers():
    import birdgen_ray

    assert callable(birdgen_ray.open_index) and callable(birdgen_ray.read_clip)
