import json
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def reference_cases():
    return json.loads((DATA / "reference_cases.json").read_text())


def pytest_collection_modifyitems(config, items):
    import os

    if os.environ.get("GLMMKIT_SLOW"):
        return
    skip = pytest.mark.skip(reason="slow: set GLMMKIT_SLOW=1 to run")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
