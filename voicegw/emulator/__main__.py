"""``python -m voicegw.emulator``: run the local ``/v1/chat`` emulator (see ``server.main``)."""

from __future__ import annotations

import sys

from .server import main

if __name__ == "__main__":
    sys.exit(main())
