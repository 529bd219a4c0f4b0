"""Progress reporting: a tqdm bar when tqdm is installed, plain lines on stderr otherwise."""

import logging
import sys

logger = logging.getLogger("skcem")


class _PlainBar:
    def __init__(self, total, desc, unit):
        self.total, self.desc, self.unit, self.n = total, desc, unit, 0
        # a terminal redraws one line; a log file gets a line per tenth of the steps done
        # (whole steps: updates may be fractions of one), not 1,700 lines for 10,000 rows
        self.redraw = getattr(sys.stderr, "isatty", lambda: False)()
        self.shown = 0

    def update(self, n=1):
        self.n += n
        done = int(self.n + 1e-9)  # whole steps done
        tenth = max(1, -(-self.total // 10)) if self.total else 1
        if not self.redraw and (done == self.shown or (
                done // tenth == self.shown // tenth and done < self.total)):
            return
        self.shown = done
        units = f" {self.unit}s" if self.unit != "it" else ""
        line = f"{self.desc}: {done}/{self.total}{units}"
        if self.redraw:
            print(f"\r{line}", end="", file=sys.stderr, flush=True)
        else:
            print(line, file=sys.stderr, flush=True)

    def close(self):
        if self.redraw:
            print(file=sys.stderr, flush=True)


class _NoBar:
    def update(self, n=1):
        pass

    def close(self):
        pass


def progress_bar(total, desc, enabled, unit="it"):
    """A bar with ``update(n)`` (``n`` may be a fraction) and ``close()``; silent when not
    ``enabled``."""
    if not enabled:
        return _NoBar()
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _PlainBar(total, desc, unit)
    return tqdm(total=total, desc=desc, file=sys.stderr, unit=unit,
                bar_format="{l_bar}{bar}| {n:.0f}/{total_fmt} [{elapsed}<{remaining}]")
