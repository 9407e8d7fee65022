"""The module table of docs/architecture.md, made from each module's docstring.

    python tools/module_table.py           # print the table
    python tools/module_table.py --write   # replace the table in docs/architecture.md
    python tools/module_table.py --check   # exit 1 if docs/architecture.md is out of date

A module says what it is in the first sentence of its docstring; the table is
those sentences, so it cannot drift from the code: `make test` runs --check.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ROOT / "src"
PAGE = ROOT / "docs" / "architecture.md"
BEGIN = "<!-- module table: made by tools/module_table.py --write -->"
END = "<!-- end of module table -->"
LAYERS = ("smsgw_core", "smsgw_adapters", "smsgw_app")  # inward first, as one reads them
SKIPPED = ("migrations",)  # Alembic's scripts: the data model section speaks for them


def summary(path: Path) -> str:
    """The first sentence of a module's docstring, on one line."""
    docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    paragraph = " ".join(docstring.split("\n\n")[0].split())
    head, found, _ = paragraph.partition(". ")
    return head + "." if found else paragraph


def rows() -> list[tuple[str, str]]:
    table: list[tuple[str, str]] = []
    def place(path: Path) -> tuple[int, Path]:
        return LAYERS.index(path.relative_to(SOURCES).parts[0]), path

    for path in sorted(SOURCES.rglob("*.py"), key=place):
        relative = path.relative_to(SOURCES)
        if any(part in SKIPPED for part in relative.parts):
            continue
        name = (f"{relative.parent.as_posix()}/" if path.name == "__init__.py"
                else relative.as_posix())
        table.append((name, summary(path)))
    return table


def escaped(text: str) -> str:
    return text.replace("|", "\\|")  # a pipe would end the cell


def table() -> str:
    lines = ["| module | what it is |", "|---|---|"]
    lines += [f"| `{name}` | {escaped(text)} |" for name, text in rows()]
    return "\n".join(lines)


def page_with_table(page: str) -> str:
    head, begin, rest = page.partition(BEGIN)
    _, end, tail = rest.partition(END)
    if not begin or not end:
        raise SystemExit(f"{PAGE}: the markers {BEGIN!r} and {END!r} are missing")
    return f"{head}{BEGIN}\n{table()}\n{END}{tail}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", action="store_true", help="update docs/architecture.md")
    action.add_argument("--check", action="store_true", help="exit 1 when it is out of date")
    args = parser.parse_args()
    if not (args.write or args.check):
        print(table())
        return 0
    page = PAGE.read_text(encoding="utf-8")
    updated = page_with_table(page)
    if args.write:
        PAGE.write_text(updated, encoding="utf-8")
        return 0
    if updated != page:
        print(f"{PAGE.relative_to(ROOT)}: the module table is out of date; "
              "run python tools/module_table.py --write", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
