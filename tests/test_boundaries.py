"""The two rules of the layout (DESIGN.md): the core never loads OpenRLHF, and no module imports
another that (directly or through others) imports it back."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "mm_eureka_plugin"


def module_files() -> dict[str, Path]:
    """Every module of the installed package (``patches/`` is installed as ``mm_eureka_plugin.patches``)."""
    files = {}
    for top, prefix in ((ROOT / PACKAGE, PACKAGE), (ROOT / "patches", f"{PACKAGE}.patches")):
        for path in sorted(top.rglob("*.py")):
            parts = [prefix, *path.relative_to(top).with_suffix("").parts]
            files[".".join(parts).removesuffix(".__init__")] = path
    return files


def core_modules() -> list[str]:
    return [name for name in module_files() if not name.startswith(f"{PACKAGE}.patches")]


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that ``name`` imports anywhere in its file (inside functions too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in known)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            for alias in node.names:
                target = f"{base}.{alias.name}"
                found.update({target} & known or {base} & known)
    return found - {name}


def test_importing_every_core_module_loads_no_openrlhf():
    modules = core_modules()
    assert len(modules) > 30 and f"{PACKAGE}.config" in modules
    script = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "    if 'openrlhf' in sys.modules:\n"
        "        sys.exit('importing ' + name + ' loads openrlhf')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]


def test_the_import_check_sees_openrlhf_when_a_module_loads_it():
    """The check above can fail: a module that imports OpenRLHF (a patch) is caught."""
    script = (
        "import importlib, sys\n"
        "importlib.import_module('mm_eureka_plugin.patches.agent_executor')\n"
        "sys.exit('openrlhf' not in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports, less a package's own parents (``a.b.c`` importing
    ``a.b`` runs ``a/b/__init__.py`` first, whatever it imports)."""
    files = module_files()
    known = set(files)
    graph = {}
    for name, path in files.items():
        graph[name] = {m for m in imports(name, path, known) if not name.startswith(m + ".")}
    return graph


def test_no_module_imports_one_that_imports_it_back():
    assert cycles(import_graph()) == []


def test_the_cycle_check_finds_a_cycle_of_three():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
