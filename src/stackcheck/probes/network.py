"""Reachability between services, seen from inside the dependent container.

The three runbook commands (name lookup, ping, nc) run at once in one exec,
each with its own short timeout, and each falls back to another tool. A slim
image with no tool at all for a step gives "unavailable": that check could not
check (a blind spot, to install the tool or declare as a gap), never a failure.
Names reach the script only as positional arguments, never as script text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stackcheck.probes.facts import NetFacts

if TYPE_CHECKING:
    import docker.errors
    from docker.models.containers import Container

# $1 = target name, $2 = port (may be empty), $3 = per-step timeout in seconds.
SCRIPT = r"""
t="$1"; p="$2"; w="$3"
have() { command -v "$1" >/dev/null 2>&1; }
(
  if have getent; then a=$(getent hosts -- "$t" | head -n 1 | cut -d ' ' -f 1)
  elif have python3; then a=$(python3 -c 'import socket,sys; print(socket.gethostbyname(sys.argv[1]))' "$t" 2>/dev/null)
  else echo "resolve unavailable no getent or python3"; exit 0; fi
  if [ -n "$a" ]; then echo "resolve ok $a"; else echo "resolve failed name does not resolve"; fi
) &
(
  if have ping; then
    if out=$(ping -c 1 -W "$w" -- "$t" 2>&1); then echo "ping ok"
    else echo "ping failed $(echo "$out" | tail -n 2 | tr '\n' ' ')"; fi
  else echo "ping unavailable no ping in the container"; fi
) &
(
  if [ -z "$p" ]; then echo "port unavailable no port configured"
  elif have nc; then
    if out=$(nc -z -w "$w" -- "$t" "$p" 2>&1); then echo "port ok"
    else echo "port failed ${out:-nc could not connect}"; fi
  elif have bash; then
    if timeout "$w" bash -c 'exec 3<>"/dev/tcp/$1/$2"' bash "$t" "$p" 2>/dev/null; then echo "port ok"
    else echo "port failed could not connect"; fi
  else echo "port unavailable no nc or bash in the container"; fi
) &
wait
"""


def file_refusal(facts: Any, exc: docker.errors.APIError, what: str) -> None:
    """File the engine's refusal to exec ``what`` on ``facts`` (error or blind).

    A paused, stopped or restarting container is the stack being wrong (the
    check fails, as a consequence of its container check); any other refusal
    is the checker's way in failing (could not check).
    """
    reason = f"cannot run {what}: {exc.explanation or exc}"
    text = str(exc.explanation or exc).lower()
    if any(word in text for word in ("is paused", "is not running", "is restarting")):
        facts.error = reason
    else:
        facts.blind = reason


# The script's step names and the checks that read them.
CHECK_OF_STEP = {"resolve": "net_resolve", "ping": "net_ping", "port": "net_port"}


def net_facts(
    container: Container, source: str, target: str, port: int | None, step_timeout: int
) -> NetFacts:
    import docker.errors  # imported once the engine answered, not at start-up

    facts = NetFacts(source=source, target=target, port=port)
    try:
        result = container.exec_run(
            ["sh", "-c", SCRIPT, "stackcheck", target, str(port or ""), str(step_timeout)],
            stdout=True,
            stderr=True,
        )
    except docker.errors.APIError as exc:
        file_refusal(facts, exc, f"commands in {container.name}")
        return facts
    output = result.output.decode("utf-8", errors="replace")
    for line in output.splitlines():
        step, _, rest = line.partition(" ")
        verdict, _, detail = rest.partition(" ")
        if verdict == "unavailable" and step in CHECK_OF_STEP:
            facts.blind_for[CHECK_OF_STEP[step]] = (
                f"cannot test from inside {container.name}: {detail.strip()}; install the "
                f"tool in the image, or declare the gap in the stack file "
                f'(gaps = ["{CHECK_OF_STEP[step]}"] under [services.{source}])'
            )
        if step == "resolve":
            facts.resolve = verdict
            if verdict == "ok":
                facts.address = detail.strip()
        elif step == "ping":
            facts.ping = verdict
        elif step == "port":
            facts.port_open = verdict
        else:
            continue
        facts.detail[step] = detail.strip()
    if result.exit_code not in (0, None) and facts.resolve == "not run":
        facts.blind = (
            f"commands in {container.name} failed (exit {result.exit_code}): {output[:200]}"
        )
    return facts
