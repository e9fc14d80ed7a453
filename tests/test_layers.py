"""No import runs back up a layer (febm_ref/_layers.py).

Every module of the package is parsed (``ast``; imports inside functions count, and so does a
string constant that is exactly the dotted name of a package module, as ``cli`` and the
verification registry import by name). An import is allowed from the module's own layer and
sibling group or from a lower layer (:func:`febm_ref._layers.may_import`). The checker is shown
to flag synthetic modules that break each rule, so an empty list of violations means something.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import febm_ref
from febm_ref._layers import LAYERS, may_import, place

PACKAGE_DIR = Path(febm_ref.__file__).resolve().parent
REPO = Path(__file__).resolve().parents[1]
_DOTTED = re.compile(r"febm_ref(\.\w+)+")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules() -> dict:
    """Dotted name -> path of every module of the package."""
    return {module_name(path): path for path in sorted(PACKAGE_DIR.rglob("*.py"))}


def is_module(name: str) -> bool:
    relative = Path(*name.split(".")[1:]) if "." in name else Path()
    base = PACKAGE_DIR / relative
    return name == "febm_ref" or base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def imported_modules(module: str, source: str, *, is_package: bool = False) -> list:
    """``(line, module)`` for every febm_ref module that ``source`` (the text of ``module``) imports."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = module.split(".") if is_package else module.split(".")[:-1]
                parts = parts[:len(parts) - (node.level - 1)]
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module
            for alias in node.names:  # `from febm_ref.x import y`: y may be a module itself
                candidate = f"{base}.{alias.name}"
                found.append((node.lineno, candidate if is_module(candidate) else base))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _DOTTED.fullmatch(node.value):
            if is_module(node.value):
                found.append((node.lineno, node.value))
    return [(line, name) for line, name in found if name == "febm_ref" or name.startswith("febm_ref.")]


def violations(module: str, source: str, *, is_package: bool = False) -> list:
    """``"module:line imports target"`` for every import of ``source`` that runs up a layer or
    across siblings."""
    return [f"{module}:{line} imports {target} ({LAYERS[place(target)[0]][0]} above or beside "
            f"{LAYERS[place(module)[0]][0]})"
            for line, target in imported_modules(module, source, is_package=is_package)
            if not may_import(module, target)]


def test_every_module_of_the_package_is_placed_in_a_layer():
    unplaced = [name for name in package_modules() if place(name) is None]
    assert unplaced == []
    assert len(package_modules()) > 80  # the scan sees the package (febm_ref.verification included)
    assert "febm_ref.verification.registry" in package_modules()


def test_no_module_imports_from_a_higher_layer_or_a_sibling():
    found = []
    for name, path in package_modules().items():
        found += violations(name, path.read_text(), is_package=path.name == "__init__.py")
    assert found == []


def test_the_layer_order_is_the_documented_one():
    assert [name for name, _ in LAYERS] == ["base", "mathematics", "samplers", "training", "experiments",
                                            "references", "interface"]
    assert place("febm_ref.training.steps")[0] < place("febm_ref.experiments.fit1d")[0] \
        < place("febm_ref.conformance.golden")[0] < place("febm_ref.commands.golden")[0]
    assert place("febm_ref.conformance.golden")[0] == place("febm_ref.verification.convergence")[0]
    assert place("febm_ref.conformance.golden") != place("febm_ref.verification.convergence")


@pytest.mark.parametrize("module, source, flagged", [
    # the import this restructure removed: the library's golden cache calling into the CLI
    ("febm_ref.conformance.cache",
     "def _builders():\n    from febm_ref.commands.golden import section_builders\n", "febm_ref.commands.golden"),
    ("febm_ref.models.energies", "import febm_ref.samplers.ula\n", "febm_ref.samplers.ula"),
    ("febm_ref.objective", "from febm_ref import cli\n", "febm_ref.cli"),
    ("febm_ref.samplers.ula", "from ..training import train\n", "febm_ref.training"),
    ("febm_ref.training.loop", "import importlib\nimportlib.import_module('febm_ref.experiments.fit1d')\n",
     "febm_ref.experiments.fit1d"),
    # siblings: conformance may not lean on verification (nor the reverse)
    ("febm_ref.conformance.golden", "from febm_ref.verification.convergence import field\n",
     "febm_ref.verification.convergence"),
    ("febm_ref.verification.check_catalogue", "from febm_ref.conformance import golden\n",
     "febm_ref.conformance.golden"),
])
def test_negative_control_a_synthetic_module_that_runs_up_a_layer_is_flagged(module, source, flagged):
    found = violations(module, source)
    assert len(found) == 1 and f" imports {flagged} " in found[0], found


def test_negative_control_allowed_imports_are_not_flagged():
    source = ("from febm_ref.conformance.golden import write_golden\nfrom . import check\n"
              "from febm_ref.local_convergence import fd_jacobian\nimport numpy as np\n")
    assert violations("febm_ref.commands.golden", source) == []
    assert violations("febm_ref.verification.convergence", "from ..local_convergence import Problem\n") == []
    assert [t for _, t in imported_modules("febm_ref.verification.convergence",
                                           "from ..local_convergence import Problem\n")] == \
        ["febm_ref.local_convergence"]


def old_verification_imports(source: str) -> list:
    """Lines importing the top-level ``verification`` package (now ``febm_ref.verification``)."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                 else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
        lines += [node.lineno for name in names if name.split(".")[0] == "verification"]
    return lines


def test_nothing_imports_the_old_top_level_verification_package():
    """A stale ``import verification`` could still resolve (an older editable install maps the
    name to that checkout's folder), silently mixing two checkouts."""
    assert old_verification_imports("from verification.registry import register\nimport verification\n") == [1, 2]
    assert old_verification_imports("from febm_ref.verification import registry\n") == []
    stale = {}
    for folder in ("febm_ref", "tests", "figures", "benchmarks", "examples"):
        for path in sorted((REPO / folder).rglob("*.py")):
            if lines := old_verification_imports(path.read_text()):
                stale[str(path.relative_to(REPO))] = lines
    assert stale == {}
