"""Fixtures of the load-test suite.

`loadtests` is not an installed package (pyproject installs app and topology),
so the repository root goes on the import path here, as Locust's own start-up
does in loadtests/locustfile.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
