"""The quickstart and every tutorial run as written: their ``python`` blocks execute in
order in one namespace (in a scratch directory, plots on the Agg backend), and the
assertions inside them check the claims the text makes."""

import os
import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
PAGES = [DOCS / "quickstart.md"] + sorted((DOCS / "tutorials").glob("*.md"))
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks(page: Path) -> list[str]:
    return BLOCK.findall(page.read_text())


def test_every_tutorial_the_issue_names_exists():
    names = {p.stem for p in PAGES}
    assert {"quickstart", "spinal_implant", "hospital_registry", "overdispersed_counts", "swine_nested"} <= names


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.stem)
def test_page_runs(page, tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    blocks = python_blocks(page)
    assert blocks, f"{page.name} has no python blocks"
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__tutorial__"}
    try:
        for i, code in enumerate(blocks):
            try:
                exec(compile(code, f"{page.name}[block {i + 1}]", "exec"), namespace)
            except Exception as exc:
                raise AssertionError(f"{page.name}, python block {i + 1} failed: {exc!r}\n{code}") from exc
    finally:
        plt.close("all")
    # pictures a page says it saves are really written
    for name in re.findall(r'savefig\("([^"]+)"\)', "\n".join(blocks)):
        assert os.path.getsize(tmp_path / name) > 1000, name
