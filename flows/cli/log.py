"""kdflow's log lines on stderr: timestamped, or through rich above the progress bars on a terminal."""

from __future__ import annotations

import logging
import sys


def setup_logging(console=None, level: int = logging.INFO) -> None:
    if console is not None:  # log lines print above the progress bars instead of through them
        from rich.logging import RichHandler

        handler = RichHandler(console=console, show_path=False, show_level=False)
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s  %(message)s", "%H:%M:%S"))
    log = logging.getLogger("kdflow")
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False
