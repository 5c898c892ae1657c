"""The shape of the code, checked: no import cycles between the project's modules, and no
module outside evaluation/scorers/ that names a particular scorer or measure by string."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("toxplatform", "evaluation", "annotations")


def project_modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Project modules `name` imports, anywhere in the file (also inside functions)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            # `from package import submodule` depends on the submodule; `from module import
            # name` on the module.
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        for target in targets:
            # The longest project module the import names (a.b.c -> a.b if c is a function).
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def test_no_module_imports_back_into_a_module_that_imports_it():
    modules = project_modules()
    graph = {name: imports_of(name, path, set(modules)) for name, path in modules.items()}
    # A package importing its own submodules (re-exports, registration) is not a cycle of
    # concern: a submodule reaching back into its package's __init__ is what is checked.
    cycles = []
    for start in graph:
        stack, seen = [(start, [start])], set()
        while stack:
            node, trail = stack.pop()
            for nxt in graph[node]:
                if nxt == start and not all(step.startswith(start + ".") for step in trail[1:]):
                    cycles.append(" -> ".join(trail + [start]))
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, trail + [nxt]))
    assert not cycles, "import cycles:\n" + "\n".join(sorted(set(cycles))[:20])


def scorer_words() -> set[str]:
    from evaluation.scorers import measures, registry

    words = set(registry.names())
    words |= {m.label for m in (measures.PERPLEXITY,)} | {measures.PERPLEXITY.metric}
    return words


def test_only_the_scorers_package_names_a_scorer_or_a_measure():
    words = scorer_words()
    offenders = []
    for name, path in project_modules().items():
        if name.startswith("evaluation.scorers"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in words:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}")
    assert not offenders, "\n".join(offenders)


def test_templates_do_not_test_a_scorer_or_measure_by_name():
    words = scorer_words()
    offenders = [
        f"{path.relative_to(ROOT)}: {word!r}"
        for package in PACKAGES for path in (ROOT / package).rglob("*.html")
        for word in words if f'"{word}"' in path.read_text(encoding="utf-8")
    ]
    assert not offenders, "\n".join(offenders)


@pytest.mark.parametrize("module", ["evaluation.tasks", "evaluation.services.dispatch"])
def test_tasks_and_the_services_they_call_do_not_share_names(module):
    import importlib

    tasks = importlib.import_module("evaluation.tasks")
    from evaluation import services

    task_names = {name for name, value in vars(tasks).items() if hasattr(value, "apply_async")}
    assert task_names and not task_names & set(vars(services))
