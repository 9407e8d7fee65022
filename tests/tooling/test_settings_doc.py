"""Every setting is documented once: in docs/configuration.md, made from the settings object."""

from __future__ import annotations

import ast
import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import msgspec

from smsgw_app.config import Settings

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "settings_doc.py"
PAGE = ROOT / "docs" / "configuration.md"
OTHER_PAGES = [ROOT / "README.md", ROOT / "benchmarks" / "README.md",
               *sorted(p for p in (ROOT / "docs").glob("*.md") if p != PAGE)]
VARIABLE = r"(?:SMSGW|OTEL)_[A-Z0-9_]*[A-Z0-9]"


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("settings_doc", TOOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_configuration_page_is_the_one_the_settings_make() -> None:
    check = subprocess.run([sys.executable, str(TOOL), "--check"],
                           capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stderr


def test_every_setting_has_a_description() -> None:
    described = _tool().descriptions()
    fields = [field.name for field in msgspec.structs.fields(Settings)]
    assert sorted(described) == sorted(fields)
    assert [name for name in fields if not described[name]] == [], (
        "write the setting's meaning in a string right under its field in config.py")


def test_a_default_is_written_as_one_would_set_it() -> None:
    tool = _tool()
    assert tool.default_text(86_400.0) == "`86400`"
    assert tool.default_text(0.5) == "`0.5`"
    assert tool.default_text(None) == tool.default_text("") == tool.default_text(()) == "unset"
    assert tool.default_text(Settings().operators) == "`A=sim://,B=sim://`"


def _variables_read(directory: Path) -> set[str]:
    """Every string constant of the Python files under `directory` shaped like a variable."""
    names: set[str] = set()
    for path in directory.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                    and re.fullmatch(VARIABLE, node.value)):
                names.add(node.value)
    return names


def test_every_variable_the_code_reads_is_on_the_configuration_page() -> None:
    page = PAGE.read_text(encoding="utf-8")
    read = set().union(*(_variables_read(ROOT / d) for d in ("src", "tests", "benchmarks")))
    assert "SMSGW_DATABASE_URL" in read and "OTEL_TRACES_EXPORTER" in read  # the scan sees
    assert sorted(name for name in read if f"`{name}`" not in page) == []


def test_no_other_page_documents_a_setting_again() -> None:
    """No second table of settings, and no default said beside a setting's name."""
    tables, defaults = [], []
    for path in OTHER_PAGES:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            where = f"{path.relative_to(ROOT)}:{number}"
            if re.match(rf"\|\s*`{VARIABLE}", line):
                tables.append(where)
            if re.search(rf"`{VARIABLE}[^`]*`[^.;]{{0,40}}\(default\b", line):
                defaults.append(where)
    assert tables == [], "settings are documented in docs/configuration.md only"
    assert defaults == [], "a setting's default is written in docs/configuration.md only"


def test_the_check_finds_a_second_table() -> None:
    """The rule above can fail: a row as the old README's table had it is caught."""
    row = "| `SMSGW_WORKERS` | `64` | messages delivered at once per worker process |"
    prose = "`SMSGW_METRICS_PORT` (default 9464, 0 = off)"
    assert re.match(rf"\|\s*`{VARIABLE}", row)
    assert re.search(rf"`{VARIABLE}[^`]*`[^.;]{{0,40}}\(default\b", prose)
