"""nox sessions mirroring `make test`, for running the suite in a fresh virtualenv."""

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]


@nox.session
def lint(session: nox.Session) -> None:
    session.install("-e", ".[dev]")
    session.run("ruff", "check", "src", "tests", "examples", "benchmarks", "tools", "noxfile.py")


@nox.session
def typecheck(session: nox.Session) -> None:
    session.install("-e", ".[dev]")
    session.run("mypy")
    session.run("lint-imports")


@nox.session
def tests(session: nox.Session) -> None:
    session.install("-e", ".[dev]")
    session.run("pytest", *session.posargs)


# One layer of the test pyramid each, as `make test-unit`, `test-contract`, `test-integration`.
@nox.session
def unit(session: nox.Session) -> None:
    session.install("-e", ".[dev]")
    session.run("pytest", "tests/unit", "tests/tooling", *session.posargs)


@nox.session
def contract(session: nox.Session) -> None:
    session.install("-e", ".[dev]")
    session.run("pytest", "tests/contract", *session.posargs)


@nox.session
def integration(session: nox.Session) -> None:
    session.install("-e", ".[dev]")
    session.run("pytest", "tests/integration", *session.posargs)
