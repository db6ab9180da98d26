"""docs/api.md cannot go stale: every name its tables list imports from the module it names."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

API_MD = Path(__file__).resolve().parents[1] / "docs" / "api.md"
ROW = re.compile(r"^\|\s*`([A-Za-z_][\w]*)`\s*\|\s*`(toposcope(?:\.\w+)*)`\s*\|")
OLD = re.compile(r"^\|\s*`(toposcope(?:\.\w+)+)`\s*\|\s*`(toposcope(?:\.\w+)+)`\s*\|\s*$")
DOTTED = re.compile(r"`(toposcope(?:\.\w+)+)")


def _text() -> str:
    return API_MD.read_text(encoding="utf-8")


def _rows():
    return [m.groups() for line in _text().splitlines() if (m := ROW.match(line))]


def _resolve(dotted: str):
    """Import the longest module prefix of ``dotted``, then walk the attributes that follow."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(dotted)


def test_the_tables_are_there_and_parse():
    rows = _rows()
    assert len(rows) > 300, "docs/api.md lost its 'Every public name' tables"
    modules = {m for _, m in rows}
    for needed in ("toposcope", "toposcope.train", "toposcope.runlock", "toposcope.analysis.profiles",
                   "toposcope.viz.inputs", "toposcope.report", "toposcope.importers"):
        assert needed in modules, needed


@pytest.mark.parametrize("name, module", _rows(), ids=lambda v: v)
def test_every_listed_name_imports(name, module):
    mod = importlib.import_module(module)
    assert hasattr(mod, name), f"docs/api.md lists {module}.{name}, which does not exist"
    public = getattr(mod, "__all__", None)
    if public is not None:
        assert name in public, f"{module}.{name} is documented but not in {module}.__all__"


def test_old_module_paths_are_the_moved_modules():
    pairs = [m.groups() for line in _text().splitlines() if (m := OLD.match(line))]
    assert pairs, "the 'Old module paths' table is missing"
    for old, new in pairs:
        assert importlib.import_module(old) is importlib.import_module(new), (old, new)


def test_every_dotted_name_in_the_prose_and_overview_resolves():
    lines = [ln for ln in _text().splitlines() if not ROW.match(ln)]  # the name tables are checked above
    names = sorted({d for ln in lines for d in DOTTED.findall(ln)})
    assert "toposcope.load_run" in names
    bad = []
    for d in names:
        try:
            _resolve(d)
        except (ImportError, AttributeError) as e:
            bad.append(f"{d}: {e}")
    assert not bad, bad


def test_citations_of_docs_method_name_existing_sections():
    """Code and docs cite "docs/method.md § Profiles": every cited section exists (its first word is a word
    of a heading: "§ Maps" finds "Maps and regions", "§ Layouts" finds "Post-hoc layouts")."""
    root = API_MD.parents[1]
    method = (root / "docs" / "method.md").read_text(encoding="utf-8")
    words = {w.lower() for h in re.findall(r"^## (.+)$", method, re.M) for w in re.findall(r"[\w-]+", h)}
    assert {"regularizer", "profiles", "maps", "statistics", "optimal", "layouts", "reliability"} <= words
    cite = re.compile(r"method\.md\s*§\s*([\w-]+)")
    bad, n = [], 0
    files = [*root.glob("src/toposcope/**/*.py"), *root.glob("docs/**/*.md"), *root.glob("tests/**/*.py"),
             root / "README.md"]
    for f in files:
        for m in cite.finditer(f.read_text(encoding="utf-8", errors="replace")):
            n += 1
            if m.group(1).lower() not in words:
                bad.append(f"{f.relative_to(root)}: § {m.group(1)}")
    assert n >= 10, "the code no longer cites docs/method.md"
    assert not bad, bad
