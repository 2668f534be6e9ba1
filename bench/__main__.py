"""``make bench``: every benchmark script, one after another (numbers, not assertions)."""

from __future__ import annotations

import sys

from bench import tracing_overhead

if __name__ == "__main__":
    sys.exit(tracing_overhead.main(sys.argv[1:]))
