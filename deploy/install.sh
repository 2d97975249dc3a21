#!/bin/sh
# The image's install steps, run by the Dockerfile and, in a fresh virtualenv, by
# planhat_pipelines_tests/deploy/test_image_steps.py (no container engine runs on the CI machines).
#   deploy/install.sh deps      the pinned packages of deploy/requirements.txt (a layer of its own, cached
#                               until that file changes)
#   deploy/install.sh project   this project (its dependencies are already there), `pip check`, then
#                               deploy/check_image.py: every import and DuckDB extension works offline
# Run from the project folder (the image's WORKDIR). PYTHON names the interpreter (default: python3).
set -eu
PYTHON="${PYTHON:-python3}"
case "${1:-}" in
  deps)
    "$PYTHON" -m pip install --no-input -r deploy/requirements.txt
    ;;
  project)
    # --no-deps: every dependency is pinned in requirements.txt; pip check then proves they satisfy
    # pyproject.toml's ranges (a missing or conflicting package fails the build here, not at run time).
    "$PYTHON" -m pip install --no-input --no-deps .
    "$PYTHON" -m pip check
    "$PYTHON" deploy/check_image.py
    ;;
  *)
    echo "usage: deploy/install.sh deps|project" >&2
    exit 2
    ;;
esac
