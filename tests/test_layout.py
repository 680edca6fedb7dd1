"""The layout's rules, read from the code's own imports: records import nothing from the line or the
console, the line nothing from the console, nothing in ivr/ imports `app`, the console and the register
runs it lists import nothing of the data set's filtering, and no modules import each other in a circle."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("ivr", "models")
REGISTER_FILTERING = ("ivr.operations.register.apply", "ivr.operations.register.filter", "ivr.operations.register.helper")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """The modules of this project that a file imports, at any depth of the file (inside functions too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.split(".")[0] in (*PACKAGES, "app")}


MODULES = {
    _module_name(path): path for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))
}
IMPORTS = {name: {imported for imported in _imports(path) if imported in MODULES or imported == "app"} for name, path in MODULES.items()}


def _in(module: str, area: str) -> bool:
    return module == area or module.startswith(area + ".")


@pytest.mark.parametrize(
    ("area", "forbidden"),
    [
        ("ivr.records", ("ivr.line", "ivr.console", "ivr.operations", "ivr.standins")),
        ("ivr.line", ("ivr.console", "ivr.operations", "ivr.standins")),
        ("ivr.operations", ("ivr.line", "ivr.console", "ivr.standins")),
        ("models", ("ivr",)),
        ("ivr", ("app",)),
        ("ivr.console", REGISTER_FILTERING),
        ("ivr.operations.register.runs", REGISTER_FILTERING),
    ],
)
def test_each_area_imports_only_what_sits_below_it(area, forbidden):
    wrong = sorted(
        f"{module} imports {imported}"
        for module, imported_modules in IMPORTS.items()
        if _in(module, area)
        for imported in imported_modules
        if any(_in(imported, other) for other in forbidden)
    )
    assert wrong == []


def test_no_modules_import_each_other_in_a_circle():
    visiting, done, circles = [], set(), []

    def visit(module: str) -> None:
        if module in done:
            return
        if module in visiting:
            circles.append(" -> ".join([*visiting[visiting.index(module) :], module]))
            return
        visiting.append(module)
        for imported in sorted(IMPORTS.get(module, ())):
            if imported != module and not module.startswith(imported + "."):  # a package's own __init__
                visit(imported)
        visiting.pop()
        done.add(module)

    for module in sorted(MODULES):
        visit(module)
    assert circles == []


def test_the_rules_see_the_imports_they_judge():
    """The checks above would pass on nothing: make sure they read real imports."""
    assert "ivr.records.choices" in IMPORTS["ivr.line.runner"]
    assert "ivr.db" in IMPORTS["ivr.records.audit"]
