"""No two test modules share a basename across checks/, tests/unit and tests/integration.

pytest imports them by basename (rootdir, no packages): `pytest tests/` with the
in-process pytester runs of checks/ failed at collection when
tests/integration/test_host.py met checks/test_host.py in sys.modules.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_test_module_basenames_are_unique() -> None:
    names = Counter(
        path.name
        for folder in ("checks", "tests/unit", "tests/integration")
        for path in (ROOT / folder).glob("test_*.py")
    )
    assert [name for name, count in names.items() if count > 1] == []
