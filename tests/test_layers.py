"""The layers: harness -> baselines -> method -> policy -> sandbox. No import runs back up, and no file-level circle.

Read from the source (ast), so a lazy import inside a function counts as much as one at the top; only imports
under `if TYPE_CHECKING:` (annotations, never executed) are exempt.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("harness", "baselines", "method", "policy", "sandbox")     # top to bottom
RANK = {p: i for i, p in enumerate(LAYERS)}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in LAYERS if (ROOT / pkg).is_dir() for p in sorted((ROOT / pkg).rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _imports(path: Path, name: str, known: dict[str, Path]) -> list[tuple[int, str]]:
    """(line, imported project module) for every runtime import in the file."""
    tree = ast.parse(path.read_text(), str(path))
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            skip |= {id(n) for b in node.body for n in ast.walk(b)}
    is_pkg = path.name == "__init__.py"
    out = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = name.split(".") if is_pkg else name.split(".")[:-1]
                pkg = pkg[: len(pkg) - (node.level - 1)]
                base = ".".join(pkg + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        for t in targets:
            while t and t not in known:          # `import a.b.c` of a function/attribute: its module
                t = t.rpartition(".")[0]
            if t and t != name:
                out.append((node.lineno, t))
    return out


def _graph() -> dict[str, list[tuple[int, str]]]:
    known = _modules()
    return {m: _imports(p, m, known) for m, p in known.items()}


def upward_imports() -> list[str]:
    bad = []
    for mod, imps in _graph().items():
        for line, target in imps:
            if RANK[target.split(".")[0]] < RANK[mod.split(".")[0]]:
                bad.append(f"{mod}:{line} imports {target}")
    return sorted(set(bad))


def circles() -> list[list[str]]:
    """Strongly connected components of more than one file (Tarjan), package __init__ edges excluded."""
    graph = {m: sorted({t for _, t in imps if not _is_init(t)}) for m, imps in _graph().items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def _is_init(module: str) -> bool:
    return (ROOT / Path(*module.split(".")) / "__init__.py").is_file()


def test_no_import_runs_up_a_layer():
    bad = upward_imports()
    assert not bad, f"{len(bad)} imports run from a lower layer into a higher one:\n" + "\n".join(bad)


def test_no_file_level_import_circle():
    found = circles()
    assert not found, f"{len(found)} import circles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_the_check_sees_a_lazy_upward_import_and_a_circle(tmp_path, monkeypatch):
    # the check itself can fail: a function-level import from sandbox into harness, and a two-file circle
    for pkg in LAYERS:
        (tmp_path / pkg).mkdir()
        (tmp_path / pkg / "__init__.py").write_text("")
    (tmp_path / "harness" / "top.py").write_text("X = 1\n")
    (tmp_path / "sandbox" / "low.py").write_text("def f():\n    from harness.top import X\n    return X\n")
    (tmp_path / "method" / "a.py").write_text("from method import b\n")
    (tmp_path / "method" / "b.py").write_text("import method.a\n")
    (tmp_path / "policy" / "ok.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from method.a import Y\nimport sandbox.low\n")
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    assert upward_imports() == ["sandbox.low:2 imports harness.top"]
    assert circles() == [["method.a", "method.b"]]
