"""The floors of docs/architecture.md hold: no part of birdgen_ray imports a part on a higher floor."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "birdgen_ray"
DOC = REPO / "docs" / "architecture.md"


def floors_in_doc() -> dict[str, int]:
    """part -> floor, from the table between the <!-- floors --> markers."""
    table = DOC.read_text().split("<!-- floors -->")[1].split("<!-- /floors -->")[0]
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


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_the_doc_names_floors_for_every_part():
    floors = floors_in_doc()
    assert set(floors.values()) == {1, 2, 3, 4, 5, 6}
    parts = {
        p.stem if p.is_file() else p.name
        for p in PACKAGE.iterdir()
        if p.suffix == ".py" or (p / "__init__.py").exists()
    }
    parts.discard("__init__")
    assert parts - set(floors) == set(), f"parts without a floor in {DOC.name}: {sorted(parts - set(floors))}"


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
