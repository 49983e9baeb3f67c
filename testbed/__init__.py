"""The Residency Scheduler testbed: a real Docker Compose stack with fault switches."""

from testbed.stack import CANARY_PASSWORD, CHANGES, FAULTS, Testbed, TestbedError

__all__ = ["CANARY_PASSWORD", "CHANGES", "FAULTS", "Testbed", "TestbedError"]
