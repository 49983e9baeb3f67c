"""The data-disk probe's one retry: an exec that exits 0 with no output (seen on the
testbed's engine, 1 run in 20) is asked once more; twice empty is blindness."""

from __future__ import annotations

from dataclasses import dataclass, field

from stackcheck.probes.docker_probe import datafs_facts
from stackcheck.probes.facts import ContainerFacts

DF = b"Filesystem 1024-blocks Used Available Capacity Mounted on\npgdata 131072 47000 84072 36% /data\n"


@dataclass
class Result:
    exit_code: int
    output: bytes


@dataclass
class Container:
    answers: list[bytes]
    name: str = "p-db-1"
    calls: list[list[str]] = field(default_factory=list)

    def exec_run(self, argv: list[str], stdout: bool, stderr: bool) -> Result:
        self.calls.append(argv)
        return Result(0, self.answers[len(self.calls) - 1])


def test_an_empty_answer_is_asked_once_more() -> None:
    container = Container([b"", DF])
    facts = datafs_facts(container, "db", ContainerFacts("db", pgdata="/data"))
    assert facts.blind is None and (facts.size_kb, facts.avail_kb) == (131072, 84072)
    assert container.calls == [["df", "-Pk", "--", "/data"]] * 2


def test_twice_empty_is_could_not_check_and_no_third_ask() -> None:
    container = Container([b"", b"  \n"])
    facts = datafs_facts(container, "db", ContainerFacts("db", pgdata="/data"))
    assert facts.blind is not None and "cannot measure /data" in facts.blind
    assert len(container.calls) == 2


def test_a_full_answer_is_asked_once() -> None:
    container = Container([DF])
    assert datafs_facts(container, "db", ContainerFacts("db", pgdata="/data")).blind is None
    assert len(container.calls) == 1
