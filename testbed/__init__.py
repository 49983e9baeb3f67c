"""The Residency Scheduler testbed: a real Docker Compose stack with fault switches."""

from testbed.stack import CANARY_PASSWORD, FAULTS, Testbed, TestbedError

__all__ = ["CANARY_PASSWORD", "FAULTS", "Testbed", "TestbedError"]
