"""Repository root: its presence puts the root on sys.path, so tests can import testbed/.

`pytest checks/` runs the health checks; `pytest tests/` runs the project's own
tests; neither collects the other, and nothing else here holds tests.
"""

collect_ignore = ["testbed", "bench", "reports", "src"]
