import json
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def reference_cases():
    return json.loads((DATA / "reference_cases.json").read_text())
