"""docs/theory.md defines every equation label that the repository cites.

Code, docstrings, tests, figures, benchmarks, examples and the docs cite the equations of
``docs/theory.md`` by labels ``D<n>``. These tests scan every tracked ``.py`` and ``.md`` file
for such labels (a range such as ``D6-D8`` cites every label in it) and check that each one is
defined in ``docs/theory.md``, where a definition is the bold marker ``**(D<n>)**``; they also
check that the theory defines D1..D17 exactly once each. A negative control runs the same
scanning functions on a planted citation of an undefined label and a planted duplicate
definition, and requires both to be caught.
"""

from __future__ import annotations

import collections
import os
import re
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
THEORY = REPO_ROOT / "docs" / "theory.md"
EXPECTED_LABELS = frozenset(range(1, 18))
SCANNED_SUFFIXES = (".py", ".md")

LABEL = re.compile(r"\bD(\d+)\b")
LABEL_RANGE = re.compile(r"\bD(\d+)\s*[-\u2013]\s*D(\d+)\b")
DEFINITION = re.compile(r"\*\*\(D(\d+)\)\*\*")
_SKIPPED_DIRS = {".git", ".hypothesis", ".pytest_cache", "__pycache__", "build", "dist"}


def cited_labels(text: str) -> set[int]:
    """Return the label numbers cited in ``text``: every ``D<n>`` and every label inside a range ``D<a>-D<b>``."""
    labels = {int(n) for n in LABEL.findall(text)}
    for first, last in LABEL_RANGE.findall(text):
        labels.update(range(int(first), int(last) + 1))
    return labels


def defined_labels(text: str) -> collections.Counter:
    """Count how often each label is defined (bold marker ``**(D<n>)**``) in ``text``."""
    return collections.Counter(int(n) for n in DEFINITION.findall(text))


def tracked_files(root: Path) -> list[Path]:
    """List the ``.py``/``.md`` files of the repository.

    ``git ls-files`` when ``root`` is a git checkout, otherwise every such file below ``root``
    outside build and cache folders.
    """
    try:
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True).stdout
        names = [name for name in listed.decode().split("\0") if name]
    except (OSError, subprocess.CalledProcessError):
        names = []
        for folder, dirs, files in os.walk(root):
            dirs[:] = [d for d in dirs
                       if d not in _SKIPPED_DIRS and not d.startswith(".") and not d.endswith(".egg-info")]
            names += [os.path.relpath(os.path.join(folder, f), root) for f in files]
    return sorted(root / name for name in names if name.endswith(SCANNED_SUFFIXES) and (root / name).is_file())


def citations(paths, root: Path) -> dict[int, list[str]]:
    """``{label: [files citing it, relative to root]}`` over ``paths``."""
    found: dict[int, list[str]] = collections.defaultdict(list)
    for path in paths:
        for label in cited_labels(Path(path).read_text(encoding="utf-8")):
            found[label].append(os.path.relpath(path, root))
    return dict(found)


def undefined_citations(found: dict[int, list[str]], defined) -> dict[int, list[str]]:
    """Select the part of ``found`` whose labels are not in ``defined``."""
    return {label: files for label, files in found.items() if label not in defined}


def test_theory_defines_d1_to_d17_exactly_once_each():
    """docs/theory.md has exactly one definition marker for each of D1..D17 and no other."""
    counts = defined_labels(THEORY.read_text(encoding="utf-8"))
    wrong = {n: counts.get(n, 0) for n in EXPECTED_LABELS | set(counts) if counts.get(n, 0) != (n in EXPECTED_LABELS)}
    assert not wrong, f"docs/theory.md must define D1..D17 once each (label: times defined): {wrong}"


def test_every_cited_label_is_defined_in_theory():
    """Every label cited in a tracked .py/.md file is defined in docs/theory.md."""
    paths = tracked_files(REPO_ROOT)
    found = citations(paths, REPO_ROOT)
    n_files = len({f for files in found.values() for f in files})
    print(f"{len(found)} distinct labels cited in {n_files} of {len(paths)} scanned files")
    # The scan must have seen the package, the checks, the tests and the README; otherwise an
    # empty scan would pass vacuously.
    scanned = {os.path.relpath(p, REPO_ROOT) for p in paths}
    for required in ("README.md", "docs/theory.md", "febm_ref/divergences.py", "tests/test_theory_doc.py"):
        assert required in scanned, f"{required} was not scanned (scanned {len(scanned)} files)"
    assert n_files >= 10, f"only {n_files} files cite a label; the scan is probably broken"
    defined = set(defined_labels(THEORY.read_text(encoding="utf-8")))
    missing = undefined_citations(found, defined)
    assert not missing, f"labels cited but not defined in docs/theory.md (label: files): {missing}"


def test_negative_control_planted_undefined_label_and_duplicate_definition(tmp_path):
    """The same functions catch a planted undefined label and a duplicated/missing definition."""
    fake_label = "D" + "99"  # spelled in two parts so that this file does not cite it
    planted = tmp_path / "planted.py"
    planted.write_text(f'"""Cites {fake_label}, D2 and the range D3-D5."""\n', encoding="utf-8")
    found = citations([planted], tmp_path)
    assert set(found) == {99, 2, 3, 4, 5}, found
    missing = undefined_citations(found, EXPECTED_LABELS)
    assert missing == {99: ["planted.py"]}, missing

    bad_theory = "**(D1)** one\n**(D1)** again\n" + "".join(f"**(D{n})** x\n" for n in range(3, 18))
    counts = defined_labels(bad_theory)
    assert counts[1] == 2 and counts[2] == 0, counts
