"""Probes: gather facts about a stack, concurrently, each within a deadline, never raising."""

from stackcheck.probes.facts import StackFacts
from stackcheck.probes.gather import gather

__all__ = ["StackFacts", "gather"]
