"""lib/'s layout (issue 17): grouped by stage, and never importing defs/.

lib/ is what the assets are built from; defs/ is Dagster's view of it. An import the other
way round (lib -> defs) ties the library to the code location and hides a cycle, so it is
refused here by reading every module's imports with ast, relative ones and imports inside
functions included."""

import ast
from pathlib import Path

import kodomo_assets.lib

LIB = Path(kodomo_assets.lib.__file__).parent
FORBIDDEN = "kodomo_assets.defs"
MAX_TOP_LEVEL = 8  # registry, paths, partitions and __init__ today; the rest live in a stage


def _package(path: Path) -> list[str]:
    """The dotted package a module's relative imports start from."""
    return ["kodomo_assets", "lib", *path.relative_to(LIB).parent.parts]


def _imported(tree: ast.AST, package: list[str]) -> list[tuple[int, str]]:
    """Every module name an import in the tree may bind, absolute, with its line."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            out.append((node.lineno, module))
            out += [(node.lineno, f"{module}.{a.name}") for a in node.names]
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and getattr(node.func, "attr", getattr(node.func, "id", None))
            in ("import_module", "__import__")
        ):
            out.append((node.lineno, node.args[0].value))
    return out


def _defs_imports(source: str, path: Path) -> list[str]:
    tree = ast.parse(source, filename=str(path))
    return [
        f"{path.relative_to(LIB.parent)}:{line} {name}"
        for line, name in _imported(tree, _package(path))
        if name == FORBIDDEN or name.startswith(FORBIDDEN + ".")
    ]


def test_lib_imports_nothing_from_defs() -> None:
    modules = sorted(LIB.rglob("*.py"))
    assert len(modules) > 30  # the walk found the library
    found = [
        hit for path in modules for hit in _defs_imports(path.read_text(encoding="utf-8"), path)
    ]
    assert found == [], "lib/ imports defs/ (move what it needs into lib/):\n" + "\n".join(found)


def test_the_check_sees_every_form_of_import() -> None:
    """The check above would pass on a check that sees nothing: each form is caught here."""
    path = LIB / "center" / "export.py"
    forms = [
        "import kodomo_assets.defs.center.assets",
        "import kodomo_assets.defs as d",
        "from kodomo_assets.defs.center.assets import NEW",
        "from kodomo_assets import defs",
        "from ...defs.center.assets import NEW",
        "from ... import defs",
        "def f():\n    from kodomo_assets.defs.linkage import assets",
        "import importlib\nimportlib.import_module('kodomo_assets.defs.center.assets')",
    ]
    for form in forms:
        assert _defs_imports(form, path), form
    allowed = [
        "from kodomo_assets.lib.center import review_list",
        "from . import review_list",
        "from ..policy.approval import MonthApproval",
        "import kodomo_assets.definitions_check",
    ]
    for form in allowed:
        assert not _defs_imports(form, path), form


def test_lib_is_grouped_by_stage() -> None:
    top = sorted(p.name for p in LIB.glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL, (
        f"{len(top)} modules at lib/'s top level (at most {MAX_TOP_LEVEL}): {top}"
    )
    for package in sorted(p for p in LIB.iterdir() if p.is_dir() and p.name != "__pycache__"):
        init = package / "__init__.py"
        assert init.is_file(), f"lib/{package.name}/ has no __init__.py"
        body = ast.parse(init.read_text(encoding="utf-8")).body
        # a docstring saying what the stage is, and no re-exports
        assert (
            len(body) == 1
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
        ), f"lib/{package.name}/__init__.py holds more than its docstring"


def test_department_codes_come_from_the_registry_only() -> None:
    """A department's code (shimin, gakumu ...) is data: the registry names it, and code looks
    it up there, so adding or renaming a department never means editing a module. No string
    literal in lib/ or defs/ may spell one."""
    from kodomo_assets.lib.registry import load_registry

    datasets = load_registry().datasets
    # a code that is also a dataset's name (kaigo, hoiku, shogai) may stand as the dataset's
    codes = {ds.department.code for ds in datasets.values()} - set(datasets)
    found = []
    for folder in (LIB, LIB.parent / "defs"):
        for path in folder.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Constant) and node.value in codes:
                    found.append(f"{path.relative_to(LIB.parent)}:{node.lineno} {node.value!r}")
    assert not found, found
