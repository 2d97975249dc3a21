"""Lines per file and per function of the package: the largest five of each and how many pass the limits.

Usage: python scripts/code_sizes.py [CHECKOUT]   (default: this checkout)
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

FILE_LIMIT, FUNCTION_LIMIT = 400, 60


def main(checkout: Path) -> None:
    root = checkout / "planhat_pipelines"
    files: list[tuple[int, str]] = []
    functions: list[tuple[int, str]] = []
    for path in sorted(root.rglob("*.py")):
        text = path.read_text()
        name = str(path.relative_to(checkout))
        files.append((len(text.splitlines()), name))
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno is not None:
                functions.append((node.end_lineno - node.lineno + 1, f"{name}::{node.name}"))
    files.sort(reverse=True)
    functions.sort(reverse=True)
    print(f"{len(files)} files, {sum(n > FILE_LIMIT for n, _ in files)} over {FILE_LIMIT} lines")
    for n, name in files[:5]:
        print(f"  {n:5d}  {name}")
    print(f"{len(functions)} functions, {sum(n > FUNCTION_LIMIT for n, _ in functions)} over {FUNCTION_LIMIT} lines")
    for n, name in functions[:5]:
        print(f"  {n:5d}  {name}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1])
