"""The README's Python examples run as written (in a scratch directory)."""

import re
from pathlib import Path

import pytest

README = Path(__file__).parent.parent / "README.md"


def _examples() -> list[str]:
    usage = README.read_text().split("## Using it", 1)[1]
    return re.findall(r"```python\n(.*?)```", usage, re.S)


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(_examples())))
def test_readme_example_runs(index: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    exec(compile(_examples()[index], f"README example {index}", "exec"), {})
