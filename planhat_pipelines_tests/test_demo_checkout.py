"""The emulator launchers are checkout tooling: the package never imports them, and `demo --emulator` finds them.

Outside a checkout (the package copied alone into a folder, as an install lays it out) the command fails with
the fix; from the checkout (editable install, any working folder) it imports ``tools/emulators/``.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from planhat_pipelines.demo.checkout import emulator_demo
from planhat_pipelines_tests.test_cli import ROOT, clean_env
from tools.emulators.processes import free_port

PACKAGE = ROOT / "planhat_pipelines"
#: What only the test extra installs, and the checkout-only tooling: the shipped package imports none of them.
# uvicorn is not here: `planhat-pipelines serve` runs the web app with it (a dependency of the package).
CHECKOUT_ONLY = {"fakesnow", "pytest", "tools", "planhat_pipelines_tests"}


def _imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_the_package_imports_no_test_extra_and_no_checkout_tooling() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(_imported_roots(path) & CHECKOUT_ONLY)
        for path in sorted(PACKAGE.rglob("*.py"))
        if _imported_roots(path) & CHECKOUT_ONLY
    }
    assert offenders == {}


def test_demo_emulator_outside_a_checkout_fails_with_the_fix(tmp_path: Path) -> None:
    site = tmp_path / "site"
    shutil.copytree(PACKAGE, site / "planhat_pipelines", ignore=shutil.ignore_patterns("__pycache__"))
    raw = yaml.safe_load((ROOT / "examples" / "demo_snowflake.yaml").read_text())
    raw["store"]["catalog"] = str(tmp_path / "planhat.sqlite")
    (connection,) = raw["connections"].values()
    connection["port"] = free_port()  # should the checkout be found after all, no clash with a running demo
    config = tmp_path / "elsewhere" / "demo_snowflake.yaml"
    config.parent.mkdir()
    config.write_text(yaml.safe_dump(raw))
    env = {**clean_env(tmp_path / "dagster_home"), "PYTHONPATH": str(site), "DEMO_SNOWFLAKE_PASSWORD": "demo"}
    command = ["-m", "planhat_pipelines.cli", "--config", str(config), "demo", "--demo", "--emulator", "snowflake"]
    result = subprocess.run(
        [sys.executable, *command],
        env=env,
        cwd=config.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "`planhat-pipelines demo --emulator` needs the source checkout" in result.stderr
    assert str(site) in result.stderr  # it looked beside the copied package, not in this checkout
    assert "Fix: clone the repository and run `make demo WAREHOUSE=bigquery`" in result.stderr
    assert "Traceback" not in result.stderr


def test_demo_emulator_from_the_checkout_finds_the_launchers_from_any_folder(tmp_path: Path) -> None:
    assert Path(emulator_demo().__file__ or "") == ROOT / "tools" / "emulators" / "demo.py"
    # The console script does not put the working folder on sys.path: found beside the editable package.
    code = "from planhat_pipelines.demo.checkout import emulator_demo; print(emulator_demo().__file__)"
    result = subprocess.run(
        [sys.executable, "-c", code], env=clean_env(), cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()) == ROOT / "tools" / "emulators" / "demo.py"
