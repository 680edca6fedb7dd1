"""The layout's rules, read from the code's own imports: records import nothing from the line or the
console, the line nothing from the console, nothing in ivr/ imports `app`, the console and the register
runs it lists import nothing of the data set's filtering, and no modules import each other in a circle."""

import ast
import re
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
IMPORTS = {
    name: {imported for imported in _imports(path) if imported in MODULES or imported == "app"} for name, path in MODULES.items()
}


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
    assert "ivr.records.choices" in IMPORTS["ivr.line.effects"]
    assert "ivr.db" in IMPORTS["ivr.records.audit"]


# What the conversation's pure machines may use: each other, and the records' pure helpers for reading
# and saying identifiers (no database, no Flask, no Twilio).
PURE_HELPERS = ("ivr.records.identity_format", "ivr.records.phone_numbers")
PURE_STANDARD_LIBRARY = ("__future__", "collections", "dataclasses", "datetime", "functools", "re", "typing", "unicodedata")


def test_the_dialogue_imports_nothing_that_touches_the_world():
    for module, path in MODULES.items():
        if not _in(module, "ivr.line.dialogue"):
            continue
        imported = {
            node.module if isinstance(node, ast.ImportFrom) else alias.name
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Import) or (isinstance(node, ast.ImportFrom) and node.level == 0)
            for alias in node.names
        }
        outside = sorted(
            name
            for name in imported
            if name
            and name.split(".")[0] not in PURE_STANDARD_LIBRARY
            and not _in(name, "ivr.line.dialogue")
            and name not in PURE_HELPERS
        )
        assert outside == [], f"{module} imports {outside}"


CHANNEL_NAMES = re.compile(r"""(==|!=|\bin\b)\s*\(?\s*["'](voice|sms)["']|["'](voice|sms)["']\s*(==|!=)""")
# Where channels may differ: the flows, and each channel's own adapter and machine.
CHANNEL_PLACES = ("ivr/line/flows.py", "ivr/line/voice.py", "ivr/line/sms.py")


def test_no_branch_on_the_channel_name_outside_the_flows():
    branches = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in sorted((ROOT / "ivr" / "line").rglob("*.py"))
        if str(path.relative_to(ROOT)) not in CHANNEL_PLACES
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if CHANNEL_NAMES.search(line)
    ]
    assert branches == []


def test_the_readme_map_names_every_module_and_nothing_that_is_gone():
    """The README's "How it is built" map: every module under ivr/ is named, under its folder, and every
    name in the map is a file that exists."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## How it is built", 1)[1].split("```", 2)[1]
    named: set[str] = set()
    folder: list[str] = []
    for line in block.splitlines():
        entry = re.match(r"^( *)(\S+)", line)
        if entry is None or line.startswith(" " * 25):
            continue  # a blank line, or a description carried on
        depth = len(entry.group(1)) // 2
        name = entry.group(2)
        folder = folder[:depth]
        if name.endswith("/"):
            folder.append(name.rstrip("/") if depth else name.rstrip("/"))
            continue
        for each in name.rstrip(",").split(","):
            if each.endswith(".py") and "*" not in each:
                named.add("/".join([*folder, each.strip()]) if depth else each.strip())
    modules = {str(path.relative_to(ROOT)) for path in (ROOT / "ivr").rglob("*.py") if path.name != "__init__.py"}
    globbed = {module for module in modules if re.fullmatch(r"ivr/console/\w+_pages\.py", module)}
    assert sorted(modules - named - globbed) == [], "modules missing from the README map"
    assert sorted(name for name in named if not (ROOT / name).exists()) == [], "names in the map with no file"
