"""Every ```python block in docs/*.md and README.md runs, so the docs cannot drift from the code.

The blocks of one file run in order in one namespace, in a fresh interpreter and a fresh
temporary directory, as a reader would paste them into a new session. A block whose
opening fence is ```python no-run is shown but not run (for code that needs a service the
reader runs, like a Collector).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted([*ROOT.glob("docs/*.md"), ROOT / "README.md"])
FENCE = re.compile(r"^```python([^\n]*)\n(.*?)^```", re.MULTILINE | re.DOTALL)

RUNNER = """
import json, sys, traceback
blocks = json.load(open(sys.argv[1]))
namespace = {"__name__": "__main__"}
for line, code in blocks:
    try:
        exec(compile(code, f"{sys.argv[2]}:{line}", "exec"), namespace)
    except BaseException:
        print(f"block at line {line} failed:", file=sys.stderr)
        traceback.print_exc()
        sys.exit(1)
"""


def python_blocks(path: Path) -> list[tuple[int, str]]:
    """(line number, code) of every runnable python block of *path*."""
    text = path.read_text(encoding="utf-8")
    blocks = []
    for match in FENCE.finditer(text):
        if "no-run" in match.group(1):
            continue
        line = text.count("\n", 0, match.start()) + 2
        blocks.append((line, match.group(2)))
    return blocks


@pytest.mark.parametrize("path", [p for p in DOCS if python_blocks(p)], ids=lambda p: p.name)
def test_doc_examples_run(path: Path, tmp_path: Path) -> None:
    """The examples of each document run without error, in order, in a fresh interpreter."""
    blocks = tmp_path / "blocks.json"
    blocks.write_text(json.dumps(python_blocks(path)))
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OTELRES_"))}
    env["PYTHONPATH"] = str(ROOT)
    result = subprocess.run(
        [sys.executable, "-c", RUNNER, str(blocks), path.name],
        cwd=work, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, f"{path.name}:\n{result.stderr[-4000:]}"
