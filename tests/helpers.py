"""Constants shared by the tests; import them with ``from helpers import MS``.

``tests/`` is on ``sys.path`` because ``tests/conftest.py`` lives there (pytest's default
``prepend`` import mode), so this module imports as ``helpers``.
"""

from __future__ import annotations

import os
from typing import Final

__all__ = ["MS"]

#: One millisecond of real time, in seconds, scaled by ``VOICEGW_TEST_MS`` (default 1).
#: Every real timeout in a test is a multiple of it, so a slow machine (a Raspberry Pi, a busy
#: CI runner) can stretch them all at once: ``VOICEGW_TEST_MS=5 scripts/test``.
MS: Final = float(os.environ.get("VOICEGW_TEST_MS", "1")) * 0.001
