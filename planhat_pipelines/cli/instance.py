"""The Dagster instance the CLI works on: ``$DAGSTER_HOME``, else the checkout's ``.dagster_home``."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from planhat_pipelines.errors import PlanhatPipelinesError

if TYPE_CHECKING:
    import dagster as dg

#: The checkout this package runs from: its .dagster_home is the documented default instance (the Makefile's).
REPO_ROOT = Path(__file__).resolve().parents[2]


def resolve_dagster_home(env: Mapping[str, str], root: Path = REPO_ROOT) -> tuple[Path, bool]:
    """The instance folder: ``$DAGSTER_HOME``, else the checkout's ``.dagster_home`` (as ``make dev`` uses).

    Returns:
        The folder, and whether it is the default (``DAGSTER_HOME`` was not set).

    Raises:
        PlanhatPipelinesError: neither is there.
    """
    if env.get("DAGSTER_HOME"):
        return Path(env["DAGSTER_HOME"]), False
    default = root / ".dagster_home"
    if default.is_dir():
        return default, True
    raise PlanhatPipelinesError(
        "DAGSTER_HOME is not set, and there is no project default (.dagster_home in the checkout). Fix: export "
        "DAGSTER_HOME=<folder> naming the Dagster instance the UI and daemon use (`make dev` uses "
        "<checkout>/.dagster_home), e.g. export DAGSTER_HOME=$PWD/.dagster_home"
    )


@contextlib.contextmanager
def dagster_instance() -> Iterator[dg.DagsterInstance]:
    """The Dagster instance of ``$DAGSTER_HOME`` or of the project default, set up as the Makefile does."""
    import dagster as dg

    home, defaulted = resolve_dagster_home(os.environ)
    if defaulted:
        # The same instance `make dev` and `make demo` use; exported so the commands this CLI prints, and any
        # Dagster code it calls, see the same one.
        os.environ["DAGSTER_HOME"] = str(home)
        if not (home / "dagster.yaml").exists() and (REPO_ROOT / "dagster.yaml").exists():
            shutil.copyfile(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")  # what `make dev` does
        print(f"(DAGSTER_HOME is not set: using the project's default, DAGSTER_HOME={home})", file=sys.stderr)
    with dg.DagsterInstance.get() as instance:
        yield instance
