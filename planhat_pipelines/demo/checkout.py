"""``planhat-pipelines demo --emulator``: the emulator launchers come from the source checkout, not this package.

The launchers (``tools/emulators/``) start local-bigquery from the venv ``make emulators`` builds and a fakesnow
server, with the test extra's packages; the demo configs they read are the checkout's ``examples/``. None of that
is in the installed package, so the command finds the checkout, or says plainly that it needs one.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

from planhat_pipelines.errors import PlanhatPipelinesError

_MODULE = "tools.emulators.demo"


class CheckoutRequiredError(PlanhatPipelinesError):
    """A command needs the source checkout's tooling and was run from an installed package."""


def _is_checkout(folder: Path) -> bool:
    return (folder / "tools" / "emulators" / "demo.py").is_file() and (folder / "pyproject.toml").is_file()


def emulator_demo() -> ModuleType:
    """The checkout's ``tools.emulators.demo`` (``demo_emulator``, ``seed_emulator``), imported lazily.

    Found on ``sys.path`` (``python -m planhat_pipelines.cli`` from the checkout, as ``make demo`` runs it), else
    in the current folder, else beside this package when it is installed in editable mode from a checkout.

    Raises:
        CheckoutRequiredError: No checkout is found: the launchers are not part of the installed package.
    """
    with_checkout = [Path.cwd(), Path(__file__).resolve().parent.parent.parent]
    try:
        return importlib.import_module(_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name not in ("tools", "tools.emulators", _MODULE):
            raise  # the checkout was found; something it imports is missing, and that error names it
    for folder in with_checkout:
        if _is_checkout(folder):
            sys.path.insert(0, str(folder))
            return importlib.import_module(_MODULE)
    raise CheckoutRequiredError(
        "`planhat-pipelines demo --emulator` needs the source checkout: the emulator launchers live in its "
        "tools/emulators/ and are not installed with the package (looked in the current folder "
        f"{with_checkout[0]} and beside the package, {with_checkout[1]}). Fix: clone the repository and run "
        "`make demo WAREHOUSE=bigquery` or `make demo WAREHOUSE=snowflake` in it, or run this command from its "
        "top folder."
    )
