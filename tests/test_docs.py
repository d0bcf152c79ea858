"""The examples in README.md and docs/*.md run as written (blocks of a page share one namespace)."""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
GPU_OR_OPTIONAL = re.compile(r"\bimport cupy\b|cupy\.|[\x27\"]cuda[\x27\"]|torch\.compile|\bjax\b")


def _blocks(page):
    return re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)


@pytest.mark.parametrize("page", [p for p in PAGES if _blocks(p)], ids=lambda p: p.name)
def test_examples_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ns = {"__name__": "__doc_example__"}
    for code in _blocks(page):
        if GPU_OR_OPTIONAL.search(code):
            continue  # GPU-only or optional-peer examples: covered by their own tests
        exec(compile(code, f"{page.name}", "exec"), ns)
