"""Helpers for tests that run the Python examples of a Markdown document."""

from __future__ import annotations

import re
from pathlib import Path


def python_blocks(path: Path) -> list[str]:
    """The ```python fenced blocks of a Markdown file, in order."""
    return re.findall(r"^```python\n(.*?)^```", path.read_text(), re.S | re.M)
