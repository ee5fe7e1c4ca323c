"""The house rules of ARCHITECTURE.md, checked on the source: a rule broken fails here."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest

from dse.search import records

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "dse"
RECORDS = PACKAGE / "search" / "records.py"
OPTUNA_ADAPTER = PACKAGE / "search" / "optuna_private.py"
TORCH_ADAPTER = PACKAGE / "train" / "torch_private.py"
MAX_FUNCTION_LINES = 80
MAX_FILE_LINES = 400
# What the CLI may import from dse: the command layer, the output layer and the errors.
CLI_LAYERS = ("dse.cli", "dse.commands", "dse.output", "dse.errors")
# The names a trial's stored attributes are read and written through (records.TrialRecord).
ATTRIBUTE_ACCESS = ("user_attrs", "system_attrs", "set_user_attr", "set_system_attr")
TRIAL_KEYS = {
    value for name, value in vars(records).items() if name.isupper() and isinstance(value, str)
}


@dataclass(frozen=True)
class Source:
    path: Path
    tree: ast.Module
    lines: int

    @property
    def name(self) -> str:
        return str(self.path.relative_to(ROOT))


def sources(*folders: str) -> list[Source]:
    found = []
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            text = path.read_text()
            found.append(Source(path, ast.parse(text), len(text.splitlines())))
    return found


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: Source) -> list[str]:
    """Every dse module a file imports (`from dse import x` counts as dse.x)."""
    names = []
    for node in ast.walk(source.tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "dse":
                names += [f"dse.{alias.name}" for alias in node.names]
            else:
                names.append(node.module)
    return [n for n in names if n == "dse" or n.startswith("dse.")]


def is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def test_the_cli_imports_only_the_command_output_and_error_layers():
    cli = [s for s in sources("dse") if s.path.is_relative_to(PACKAGE / "cli")]
    assert {s.path.name for s in cli} >= {"__init__.py", "options.py"}
    for source in cli:
        outside = [m for m in imported_modules(source) if not m.startswith(CLI_LAYERS)]
        assert outside == [], f"{source.name} imports {outside}; allowed: {CLI_LAYERS}"


def test_no_module_imports_another_modules_underscore_name():
    broken = []
    for source in sources("dse", "bench", "tests"):
        own = module_name(source.path)
        for node in ast.walk(source.tree):
            module = getattr(node, "module", "") or ""
            if source.path == OPTUNA_ADAPTER and module.startswith("optuna"):
                continue  # optuna's private API has its one place (the next test)
            if source.path == TORCH_ADAPTER and module.startswith("torch"):
                continue  # torch's private API too (dse/train/torch_private.py)
            if isinstance(node, ast.ImportFrom) and node.module != "__future__":
                names = [a.name for a in node.names if is_private(a.name)]
                module_private = node.module and any(is_private(p) for p in node.module.split("."))
                if (names or module_private) and node.module != own:
                    broken.append(f"{source.name}:{node.lineno} from {node.module} import {names}")
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if any(is_private(p) for p in alias.name.split(".")):
                        broken.append(f"{source.name}:{node.lineno} import {alias.name}")
    assert broken == []


def _optuna_private_names() -> set[str]:
    """The private attributes of optuna's study, trials and storage, read from live objects."""
    study = optuna.create_study()
    trial = study.ask()
    study.tell(trial, 1.0)
    objects = [study, trial, study.trials[0], study._storage]
    names = {n for obj in objects for n in (*vars(obj), *dir(type(obj))) if is_private(n)}
    return names


def test_optuna_private_api_only_in_its_adapter():
    private = _optuna_private_names()
    broken = []
    for source in sources("dse", "bench"):
        if source.path == OPTUNA_ADAPTER:
            continue
        for node in ast.walk(source.tree):
            value = getattr(node, "value", None)
            own = isinstance(value, ast.Name) and value.id in ("self", "cls")
            if isinstance(node, ast.Attribute) and node.attr in private and not own:
                broken.append(f"{source.name}:{node.lineno} .{node.attr}")
            module = (node.module or "") if isinstance(node, ast.ImportFrom) else ""
            if module.startswith("optuna") and any(is_private(p) for p in module.split(".")):
                broken.append(f"{source.name}:{node.lineno} from {module}")
    assert broken == [], f"optuna's private API outside {OPTUNA_ADAPTER.name}: {broken}"


def _key_uses(tree: ast.Module) -> list[tuple[int, str]]:
    """String keys looked up in a mapping named like attributes: attrs["key"],
    trial_attrs.get("key"), "key" in attrs (the stored attributes, passed around)."""
    uses = []
    for node in ast.walk(tree):
        target, keys = None, []
        if isinstance(node, ast.Subscript):
            target, keys = node.value, [node.slice]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in ("get", "pop", "setdefault") and node.args:
                target, keys = node.func.value, [node.args[0]]
        elif isinstance(node, ast.Compare) and isinstance(node.ops[0], ast.In | ast.NotIn):
            target, keys = node.comparators[0], [node.left]
        if target is None or "attr" not in ast.unparse(target):
            continue
        for key in keys:
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                uses.append((node.lineno, key.value))
    return uses


def test_trial_attributes_are_read_and_written_only_by_the_record_module():
    """Stored attributes are reached through optuna's user_attrs / set_user_attr (records.py
    alone may), and their keys are named only there (not looked up in an `attrs` mapping)."""
    assert {"metrics", "config", "curve", "rungs", "error"} <= TRIAL_KEYS
    broken = []
    for source in sources("dse", "bench"):
        if source.path == RECORDS:
            continue
        for node in ast.walk(source.tree):
            name = node.attr if isinstance(node, ast.Attribute) else None
            name = node.arg if isinstance(node, ast.keyword) else name
            if name in ATTRIBUTE_ACCESS:
                broken.append(f"{source.name}:{node.lineno} .{name}")
        for line, key in _key_uses(source.tree):
            if key in TRIAL_KEYS:
                broken.append(f"{source.name}:{line} [{key!r}]")
    assert broken == [], "stored attributes outside dse/search/records.py"


def test_the_other_keys_appear_nowhere_else():
    """A key that is no ordinary word (metrics, curve, retry_of, ...) appears as a string only
    in dse/search/records.py."""
    distinctive = TRIAL_KEYS - records.SHARED_WORDS
    assert {"metrics", "curve", "retry_of", "values_at_stop", "fingerprints"} <= distinctive
    broken = [
        f"{source.name}:{node.lineno} {node.value!r}"
        for source in sources("dse", "bench")
        if source.path != RECORDS
        for node in ast.walk(source.tree)
        if isinstance(node, ast.Constant) and node.value in distinctive
    ]
    assert broken == []


@pytest.mark.parametrize("source", sources("dse"), ids=lambda s: s.name)
def test_files_and_functions_stay_small(source: Source):
    assert source.lines <= MAX_FILE_LINES, f"{source.name}: {source.lines} lines"
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(source.tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert long == [], f"{source.name}: {long}"


def test_the_checks_catch_what_they_are_for(tmp_path):
    """Each rule fails on a file that breaks it (so a rule that matches nothing is noticed)."""
    bad = ast.parse(
        "from dse.search.runner import _InFlight\n"
        "t.user_attrs['metrics']\n"
        "x = attrs.get('curve')\n"
        "rows['curve']\n"
        "study._storage\n"
    )
    assert any(
        is_private(a.name) for n in ast.walk(bad) if isinstance(n, ast.ImportFrom) for a in n.names
    )
    assert {key for _, key in _key_uses(bad)} & TRIAL_KEYS == {"metrics", "curve"}
    assert "_storage" in _optuna_private_names()
    body = "\n".join(f"    x = {i}" for i in range(MAX_FUNCTION_LINES))
    long = ast.parse(f"def f():\n{body}\n")
    node = long.body[0]
    assert node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
