"""Every Python process started with tests/hooks on its PYTHONPATH (Ray workers, the CLI subprocesses
of the tests) gets the test suite's fault hooks: tests/fault_hooks.py."""

try:
    from tests.fault_hooks import install
except ImportError:  # the checkout is not on PYTHONPATH after all: no hooks, nothing else changes
    pass
else:
    install()
