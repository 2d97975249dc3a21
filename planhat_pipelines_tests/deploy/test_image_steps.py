"""The user-code image's steps, run without a container engine (issue 15, item 3).

No container engine can build here: buildah and podman install from Debian, but the base image's registry
(registry-1.docker.io) does not resolve on these machines. So this test does what the Dockerfile does, in a
fresh virtualenv: it copies what each COPY copies (only what .dockerignore lets into the build context) into
a folder standing for the image's WORKDIR, and runs each `sh deploy/install.sh ...` RUN step there with the
virtualenv's Python: the same pinned installs, `pip check`, and the same offline import check. Any other RUN
step must be one of the few known ones (the user, DAGSTER_HOME), so a new step cannot go untested silently.
"""

from __future__ import annotations

import fnmatch
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
#: RUN steps that only set up the image's OS user and DAGSTER_HOME: nothing a virtualenv can run.
OS_ONLY_STEPS = ("groupadd ", 'mkdir -p "$DAGSTER_HOME"')
INSTALL_TIMEOUT_SECONDS = 900


@dataclass(frozen=True)
class Instruction:
    keyword: str
    argument: str


def instructions(dockerfile: Path) -> list[Instruction]:
    """The Dockerfile's instructions, comments dropped and continued lines joined."""
    logical: list[str] = []
    pending = ""
    for line in dockerfile.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, f"{dockerfile}: the last instruction ends with a line continuation"
    parsed = []
    for text in logical:
        keyword, _, argument = text.strip().partition(" ")
        parsed.append(Instruction(keyword.upper(), " ".join(argument.split())))
    return parsed


def in_build_context(relative: str, patterns: list[str]) -> bool:
    """Whether .dockerignore lets ``relative`` into the build context (the last matching pattern wins;
    a pattern also matches everything under a folder it matches)."""
    parts = relative.split("/")
    included = True
    for pattern in patterns:
        negated = pattern.startswith("!")
        body = pattern[1:] if negated else pattern
        body = body.rstrip("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatchcase(p, body) or fnmatch.fnmatchcase(p, body.replace("**/", "")) for p in prefixes):
            included = negated
    return included


def dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def copy_into(workdir: Path, sources: list[str], destination: str, patterns: list[str]) -> None:
    """COPY ``sources`` (relative to the repository, the build context) to ``destination`` (relative to WORKDIR)."""
    target = workdir / destination
    for source in sources:
        path = ROOT / source
        assert path.exists(), f"{DOCKERFILE}: COPY {source}: no such file in the repository"
        assert in_build_context(source, patterns), f"COPY {source}, but .dockerignore keeps it out of the context"
        if path.is_dir():
            shutil.copytree(
                path,
                target if len(sources) == 1 and not destination.endswith("/") else target / path.name,
                ignore=lambda folder, names: [
                    n for n in names if not in_build_context(str((Path(folder) / n).relative_to(ROOT)), patterns)
                ],
            )
        else:
            out = target / path.name if destination.endswith("/") or len(sources) > 1 else target
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, out)


def test_dockerfile_steps_install_and_check_in_a_fresh_virtualenv(tmp_path: Path) -> None:
    steps = instructions(DOCKERFILE)
    base = next(s.argument for s in steps if s.keyword == "FROM")
    tag = base.partition(":")[2]
    assert tag and "latest" not in tag, f"the base image must be pinned to a version, not {base!r}"
    python = re.match(r"(\d+\.\d+)\.\d+", tag)
    assert python, f"the base image tag {tag!r} names no Python version"
    assert python.group(1) == ".".join(platform.python_version_tuple()[:2]), (
        f"the image's Python ({tag}) is not the one the tests run on ({platform.python_version()})"
    )
    users = [s.argument for s in steps if s.keyword == "USER"]
    assert users and not users[-1].startswith(("0", "root")), f"the image must end as a non-root user: {users}"

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    workdir = tmp_path / "image"
    env = {
        **os.environ,
        "PYTHON": str(venv / "bin" / "python"),
        "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    env.pop("VIRTUAL_ENV", None)
    env.pop("PYTHONPATH", None)
    patterns = dockerignore_patterns()
    ran: list[str] = []
    for step in steps:
        if step.keyword == "WORKDIR":
            workdir = tmp_path / "image" / step.argument.lstrip("/")
            workdir.mkdir(parents=True, exist_ok=True)
        elif step.keyword == "COPY":
            *sources, destination = shlex.split(step.argument)
            copy_into(workdir, sources, destination, patterns)
        elif step.keyword == "RUN" and step.argument.startswith("sh deploy/install.sh"):
            done = subprocess.run(
                shlex.split(step.argument),
                cwd=workdir,
                env=env,
                capture_output=True,
                text=True,
                timeout=INSTALL_TIMEOUT_SECONDS,
                check=False,
            )
            assert done.returncode == 0, f"RUN {step.argument} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
            ran.append(step.argument)
            if step.argument.endswith("project"):
                assert "image check passed" in done.stderr, done.stderr[-2000:]
        elif step.keyword == "RUN":
            assert step.argument.startswith(OS_ONLY_STEPS), (
                f"{DOCKERFILE}: RUN {step.argument!r} is neither an install step (deploy/install.sh) nor a known "
                "OS-only step: run it in this test too, or add it to OS_ONLY_STEPS with the reason"
            )
    assert ran == ["sh deploy/install.sh deps", "sh deploy/install.sh project"], ran

    # Exactly the pinned packages (and the project) are installed: nothing floated in beside them.
    frozen = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "freeze", "--exclude", "planhat_pipelines"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env=env,
    ).stdout
    pinned = [
        line.strip()
        for line in (ROOT / "deploy" / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def normalised(lines: list[str]) -> set[str]:
        return {re.sub(r"[-_.]+", "-", line.lower()) for line in lines}

    assert normalised(frozen.splitlines()) == normalised(pinned), (
        "installed but not pinned: "
        f"{sorted(normalised(frozen.splitlines()) - normalised(pinned))}; pinned but not installed: "
        f"{sorted(normalised(pinned) - normalised(frozen.splitlines()))}. Fix: make deploy-lock"
    )
