"""The commands the README and the how-tos mark as runnable are run here, as written, so the docs cannot drift.

A fenced block right after a `<!-- runnable -->` line is extracted from the Markdown (not copied into this file)
and run with bash, in order: README.md first, then docs/*.md, all in one fresh folder, so a how-to may use the
store the README's tour made. Blocks without the marker need a server, your own data or a GPU, and are not run.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import isolated_env

ROOT = Path(__file__).resolve().parent.parent
MARKER = "<!-- runnable -->"
BLOCK = re.compile(r"^" + re.escape(MARKER) + r"\n```(?:bash|sh)\n(.*?)\n```", re.S | re.M)
MARKER_LINE = re.compile(r"^" + re.escape(MARKER) + r"$", re.M)


def runnable_blocks() -> list[tuple[str, str]]:
    blocks = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = doc.read_text()
        for match in BLOCK.finditer(text):
            line = text[: match.start()].count("\n") + 2
            blocks.append((f"{doc.relative_to(ROOT)}:{line}", match.group(1)))
    return blocks


def test_every_marker_precedes_a_shell_block():
    for doc in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        text = doc.read_text()
        assert len(MARKER_LINE.findall(text)) == len(BLOCK.findall(text)), (
            f"{doc.name}: a {MARKER} not followed by a bash block"
        )


@pytest.fixture(scope="module")
def docs_folder(tmp_path_factory):
    return tmp_path_factory.mktemp("docs")


BLOCKS = runnable_blocks()


@pytest.mark.parametrize("where,commands", BLOCKS, ids=[where for where, _ in BLOCKS])
def test_runnable_block(where, commands, docs_folder):
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", commands],
        cwd=docs_folder,
        env=isolated_env(docs_folder),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, f"{where} failed:\n{commands}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
