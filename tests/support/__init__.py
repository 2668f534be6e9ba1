"""What the tests share: waits on state and a configured app (``helpers``), a receiver in
the test's event loop (``worker_harness``, whose fixtures tests/conftest.py exposes), and
the example project's processes driven over HTTP (``processes``).

The example's own process management stays in ``example/processes.py``: ``make demo``
needs it, and the demo never imports the tests.
"""
