"""The house by stage: one folder per stage, imports only downwards, pure stages stay pure.

The order below is the README's drawing of the pipeline. A module may import its own
stage and any stage listed before it; ``sim`` stands beside the stack and imports only
``core``. Lazy imports inside functions count too.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from watcher import STAGES

PACKAGE = Path(__file__).resolve().parents[1] / "watcher"
BESIDE = {"sim": {"core", "sim"}}
TOP_MODULES = {"__init__", "__main__"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts).removesuffix(".__init__")


def imports_of(path: Path) -> set[str]:
    """The watcher modules one file imports, lazy imports inside functions included."""
    here = module_name(path)
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = here if path.name == "__init__.py" else here.rpartition(".")[0]
                base = f"{anchor}.{base}".rstrip(".")
            found |= {base}
    return {m for m in found if m.startswith("watcher.")}


def stage_of(module: str) -> str:
    return module.split(".")[1]


def test_each_stage_is_a_folder_and_the_top_holds_few_modules() -> None:
    top = {p.stem for p in PACKAGE.glob("*.py")}
    assert top <= TOP_MODULES and len(top) <= 6
    folders = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert folders == set(STAGES) | set(BESIDE)


def test_every_import_points_down_the_stages() -> None:
    climbs = []
    for path in PACKAGE.rglob("*.py"):
        if path.parent == PACKAGE:
            continue  # watcher/__init__ and __main__ are the entry, above everything
        here = module_name(path)
        stage = stage_of(here)
        allowed = BESIDE.get(stage) or set(STAGES[: STAGES.index(stage) + 1])
        if stage == "cli":
            allowed = allowed | {"sim"}  # the demo runs the simulator
        for target in imports_of(path):
            if stage_of(target) not in allowed:
                climbs.append(f"{here} -> {target}")
    assert climbs == []


def test_no_two_modules_share_a_stem_across_stages() -> None:
    stems: dict[str, list[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        if path.stem not in ("__init__", "__main__"):
            stems.setdefault(path.stem, []).append(module_name(path))
    assert {s: m for s, m in stems.items() if len(m) > 1} == {}
    stages = set(STAGES) | set(BESIDE)
    assert not stages & set(stems), "a module named like a stage"


def loaded_by(code: str) -> list[str]:
    probe = (
        f"import sys; {code}; print(' '.join(sorted(m for m in ('yaml', 'dotenv', 'pydantic',"
        " 'apprise', 'requests', 'ccxt', 'urllib3') if m in sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_the_pure_engine_loads_no_loader_settings_or_apprise() -> None:
    code = "import watcher.engine.evaluate, watcher.engine.builtins, watcher.engine.lookback"
    assert loaded_by(code) == []
