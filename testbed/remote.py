"""A real remote test host: the testbed stack on a Docker engine reached only by SSH.

The host is a Docker-in-Docker container on the local engine (image from Debian
packages, testbed/images.py): sshd plus a Docker engine of its own, inside which
the testbed stack runs. Only its SSH port is published, on 127.0.0.1; the stack
publishes its ports on the host's own loopback, which nothing outside reaches.

Two ways in, kept apart:

* the checker's: ``ssh://root@127.0.0.1:PORT`` with a key generated at setup
  (0600, in a private state directory) and the host key pinned in a
  known_hosts file written at setup (the host key is generated here too, never
  learned on first contact). ``RemoteHost.stack_file_text`` points the checks at it.
* the test harness's: the inner engine's second socket, in a directory mounted
  from the state directory, and ``docker exec`` into the host on the local engine
  (to signal a process or enter a network namespace there). Deploying the stack
  and injecting faults go this way; no check ever does.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import docker

from testbed import images
from testbed.stack import DEFAULT_PROJECT, SERVICES, Testbed, TestbedError, wait_for

DEFAULT_NAME = "sc-dind"
DEFAULT_SSH_PORT = 12222
NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}")
LABEL = "stackcheck.remote-host"
STATE_ENV = "STACKCHECK_REMOTE_DIR"
# Inside the host: where the harness's socket directory and the keys are mounted.
ENGINE_DIR = "/run/engine"
KEYS_DIR = "/run/keys"
USER = "root"


def state_root() -> Path:
    """Where every remote host keeps its keys and sockets (one folder per host)."""
    configured = os.environ.get(STATE_ENV)
    return Path(configured) if configured else Path(tempfile.gettempdir()) / "stackcheck-remote"


def _run(
    argv: list[str], timeout: float = 60.0, what: str = "", stdin: Any = None
) -> subprocess.CompletedProcess[str]:
    """Run argv (never a shell); raise one line on failure or timeout."""
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, check=False, stdin=stdin
        )
    except subprocess.TimeoutExpired:
        raise TestbedError(f"{what or argv[0]} took over {timeout:.0f}s") from None
    except OSError as exc:
        raise TestbedError(f"{what or argv[0]}: {exc}") from None
    if done.returncode != 0:
        lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
        # docker's own last line is often "Run 'docker run --help'": the error is before.
        errors = [line for line in lines if "error" in line.lower()] or lines
        reason = errors[-1][:400] if errors else f"exit {done.returncode}"
        raise TestbedError(f"{what or ' '.join(argv[:3])} failed: {reason}")
    return done


class RemoteHost:
    """One remote test host: a DinD container named ``name``, SSH on 127.0.0.1:ssh_port."""

    def __init__(
        self,
        name: str = DEFAULT_NAME,
        ssh_port: int = DEFAULT_SSH_PORT,
        state_dir: Path | None = None,
    ) -> None:
        if not NAME.fullmatch(name):
            raise TestbedError(f"remote host name {name!r} must match {NAME.pattern}")
        if not 1 <= ssh_port <= 65535:
            raise TestbedError(f"SSH port {ssh_port} is not a TCP port")
        self.name = name
        self.ssh_port = ssh_port
        self.state = (state_dir or state_root() / name).resolve()
        self.volume = f"{name}-docker"

    # ----------------------------------------------------------------- paths

    @property
    def identity_file(self) -> Path:
        return self.state / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.state / "known_hosts"

    @property
    def keys_dir(self) -> Path:
        """Mounted read-only in the host: its sshd host key and authorized_keys."""
        return self.state / "sshd"

    @property
    def engine_dir(self) -> Path:
        return self.state / "engine"

    @property
    def engine_url(self) -> str:
        """The harness's way to the inner engine (a socket in the state directory)."""
        return f"unix://{self.engine_dir / 'docker.sock'}"

    @property
    def ssh_url(self) -> str:
        """The checker's way to the inner engine."""
        return f"ssh://{USER}@127.0.0.1:{self.ssh_port}"

    def ssh_argv(self, *command: str) -> list[str]:
        """ssh with this host's key and pinned host key only (no agent, no ~/.ssh).

        The remote side runs the command through a shell: it is quoted as one word each.
        """
        return [
            "ssh",
            "-F",
            "/dev/null",
            "-i",
            str(self.identity_file),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            f"UserKnownHostsFile={self.known_hosts}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=5",
            "-p",
            str(self.ssh_port),
            f"{USER}@127.0.0.1",
            *([shlex.join(command)] if command else []),
        ]

    # ------------------------------------------------------------- lifecycle

    def up(self) -> None:
        """Build/reuse the image, (re)start the host, wait for its engine and for SSH."""
        image = self._image()
        self._keys()
        current = self._inspect()
        if current is not None:
            running = current["State"]["Running"]
            same = current["Config"]["Image"] == image
            port = current["HostConfig"]["PortBindings"].get("22/tcp") or [{}]
            # Another state directory means other keys: the host must be made anew.
            mounts = {m.get("Source") for m in current.get("Mounts", [])}
            ours = {str(self.keys_dir), str(self.engine_dir)} <= mounts
            if running and same and ours and port[0].get("HostPort") == str(self.ssh_port):
                self._wait_ready()
                return
            _run(["docker", "rm", "-f", self.name], what=f"removing the old {self.name}")
        self.engine_dir.mkdir(mode=0o700, exist_ok=True)
        try:
            self._start(image)
        except TestbedError:
            # A failed `docker run` (port taken, say) leaves a created container.
            subprocess.run(["docker", "rm", "-f", self.name], capture_output=True, check=False)
            raise
        self._wait_ready()

    def _start(self, image: str) -> None:
        _run(
            [
                "docker",
                "run",
                "-d",
                "--name",
                self.name,
                "--hostname",
                self.name,
                "--label",
                f"{LABEL}={self.name}",
                # --privileged needs CAP_SYS_RESOURCE, which this engine lacks.
                "--cap-add",
                "ALL",
                "--cap-drop",
                "SYS_RESOURCE",
                "--security-opt",
                "seccomp=unconfined",
                "--security-opt",
                "systempaths=unconfined",
                "-p",
                f"127.0.0.1:{self.ssh_port}:22",
                # overlay2 of the inner engine cannot sit on the outer overlay.
                "-v",
                f"{self.volume}:/var/lib/docker",
                "-v",
                f"{self.keys_dir}:{KEYS_DIR}:ro",
                "-v",
                f"{self.engine_dir}:{ENGINE_DIR}",
                image,
            ],
            what=f"starting {self.name}",
        )

    def down(self, volumes: bool = False) -> None:
        """Remove the host (and with volumes=True its engine's images); keep the keys."""
        if self._inspect() is not None:
            _run(["docker", "rm", "-f", "-v", self.name], what=f"removing {self.name}")
        if volumes:
            subprocess.run(
                ["docker", "volume", "rm", "-f", self.volume], capture_output=True, check=False
            )

    def _image(self) -> str:
        try:
            return images.build_remote()
        except (subprocess.CalledProcessError, OSError) as exc:
            raise TestbedError(f"building the remote host's image failed: {exc}") from None

    def _inspect(self) -> dict[str, Any] | None:
        try:
            client = docker.from_env(timeout=30)
            try:
                return client.api.inspect_container(self.name)  # type: ignore[no-any-return]
            finally:
                client.close()
        except docker.errors.NotFound:
            return None
        except docker.errors.DockerException as exc:
            raise TestbedError(f"no Docker engine: {exc} (run testbed/engine.sh)") from None

    def _keys(self) -> None:
        """The client key pair and the host key; known_hosts pins the host key."""
        self.state.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.state.chmod(0o700)
        self.keys_dir.mkdir(mode=0o700, exist_ok=True)
        host_key = self.keys_dir / "ssh_host_ed25519_key"
        for key, comment in ((self.identity_file, "checker"), (host_key, self.name)):
            if not key.exists():
                _run(
                    ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(key)],
                    what="ssh-keygen",
                )
            key.chmod(0o600)
        public = self.identity_file.with_suffix(".pub").read_text().strip()
        authorized = self.keys_dir / "authorized_keys"
        authorized.write_text(f"{public}\n")
        authorized.chmod(0o600)
        host_public = host_key.with_suffix(".pub").read_text().split()
        self.known_hosts.write_text(
            f"[127.0.0.1]:{self.ssh_port} {host_public[0]} {host_public[1]}\n"
        )
        self.known_hosts.chmod(0o600)

    def _wait_ready(self, timeout: float = 90.0) -> None:
        def engine() -> bool:
            client = docker.DockerClient(base_url=self.engine_url, timeout=5)
            try:
                return bool(client.ping())
            finally:
                client.close()

        def ssh() -> bool:
            _run(self.ssh_argv("true"), timeout=15, what="ssh login with the pinned host key")
            return True

        wait_for(self._alive, 10, f"{self.name} to keep running", interval=0.5)
        wait_for(engine, timeout, f"the Docker engine inside {self.name}", interval=0.3)
        wait_for(ssh, 30, f"SSH on 127.0.0.1:{self.ssh_port}", interval=0.3)

    def _alive(self) -> bool:
        found = self._inspect()
        if found is None or not found["State"]["Running"]:
            logs = subprocess.run(
                ["docker", "logs", "--tail", "3", self.name],
                capture_output=True,
                text=True,
                check=False,
            )
            raise TestbedError(f"{self.name} is not running: {logs.stderr.strip()[-300:]}")
        return True

    def load_images(self, tags: list[str]) -> None:
        """Copy local images into the inner engine (`docker save | docker load`), once."""
        inner = ["docker", "-H", self.engine_url]
        missing = [
            tag
            for tag in tags
            if subprocess.run(
                [*inner, "image", "inspect", tag], capture_output=True, check=False
            ).returncode
            != 0
        ]
        if not missing:
            return
        print(f"loading {' '.join(missing)} into {self.name}", file=sys.stderr, flush=True)
        save = subprocess.Popen(["docker", "save", *missing], stdout=subprocess.PIPE)
        try:
            _run([*inner, "load", "-q"], timeout=300, what="docker load", stdin=save.stdout)
        finally:
            if save.stdout:
                save.stdout.close()
            if save.wait(timeout=60) != 0:
                raise TestbedError(f"docker save {' '.join(missing)} failed")

    # ------------------------------------------------- the host, for the harness

    def exec(self, argv: list[str], timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
        """Run argv on the host (docker exec on the local engine); never raises on exit."""
        try:
            return subprocess.run(
                ["docker", "exec", self.name, *argv],
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise TestbedError(
                f"{self.name}: {' '.join(argv)[:60]} took over {timeout:.0f}s"
            ) from None

    def stack_file_text(self, bed: Testbed) -> str:
        """A stack file that points the checks at ``bed`` through SSH only.

        The health URL and the DSN are the services' own ports as seen from
        inside their containers: the checks reach them through the engine
        (``health_via``/``postgres_via = "exec"``), never from this host, where
        nothing of the remote stack is published.
        """
        return f"""\
# Points stackcheck at the testbed inside the remote test host {self.name}
# (python -m testbed remote up): its engine only, over SSH. Password: PGPASSWORD.
[stack]
name = "{bed.project}"
compose_project = "{bed.project}"
docker_host = "{self.ssh_url}"

[ssh]
identity_file = "{self.identity_file}"
known_hosts = "{self.known_hosts}"

[services.backend]
depends_on = ["db"]
{_via_lines("health")}port = 8000

[services.db]
{_via_lines("postgres")}port = 5432
"""

    def status(self) -> dict[str, str]:
        found = self._inspect()
        if found is None:
            return {"host": "missing"}
        info = {"host": found["State"]["Status"], "image": found["Config"]["Image"]}
        try:
            _run(self.ssh_argv("docker", "version", "--format", "{{.Server.Version}}"), 20)
            info["ssh"] = f"{self.ssh_url} answers (pinned host key), inner engine answers"
        except TestbedError as exc:
            info["ssh"] = str(exc)
        return info


def _via_lines(kind: str) -> str:
    """The health/PostgreSQL lines of the remote stack file, as far as the checker knows them.

    Through the engine needs the per-service ``health_via``/``postgres_via``
    keys; a checker without them would try the URL/DSN from this host, where
    127.0.0.1 is not the remote host's loopback (it may even be a local testbed),
    so then the lines are left out and those checks do not apply.
    """
    from stackcheck import config

    key = f"{kind}_via"
    if not any(key in section for section in getattr(config, "SCHEMA", {}).values()):
        return ""
    if kind == "health":
        return f'health_url = "http://localhost:8000/health"\n{key} = "exec"\n'
    return f'{key} = "exec"\npostgres_user = "scheduler"\npostgres_db = "scheduler"\n'


class RemoteTestbed(Testbed):
    """The testbed stack inside a remote test host; faults injected from the harness side."""

    def __init__(self, host: RemoteHost, project: str = DEFAULT_PROJECT, **kwargs: Any) -> None:
        super().__init__(project=project, **kwargs)
        self.host = host

    def _connect(self) -> docker.DockerClient:
        # The inner engine's socket: exec output read whole, as Testbed._connect does.
        from stackcheck.probes.streams import keep_exec_output

        client = docker.DockerClient(base_url=self.host.engine_url, timeout=30)
        kept: docker.DockerClient = keep_exec_output(client)
        return kept

    def _engine_env(self) -> dict[str, str]:
        return {"DOCKER_HOST": self.host.engine_url}

    def images(self) -> dict[str, str]:
        if self._images is None:
            wanted = super().images()
            self.host.load_images(sorted(wanted.values()))
            self._images = wanted
        return self._images

    def _host_has_pid(self, pid: int) -> bool:
        return self.host.exec(["test", "-d", f"/proc/{pid}"]).returncode == 0

    def _host_process_state(self, pid: int) -> str:
        done = self.host.exec(["cat", f"/proc/{pid}/status"])
        found = re.search(r"^State:\s+(\S)", done.stdout, re.MULTILINE)
        return found.group(1) if done.returncode == 0 and found else ""

    def _host_signal(self, pid: int, signum: signal.Signals) -> None:
        self.host.exec(["kill", f"-{signum.name.removeprefix('SIG')}", str(pid)])

    def _nsenter_ip(self, pid: int, *args: str) -> str:
        done = self.host.exec(["nsenter", "-t", str(pid), "-n", "ip", *args], timeout=10)
        if done.returncode != 0:
            raise TestbedError(f"nsenter ip {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout

    def health(self, timeout: float = 2.0) -> str:
        """As Testbed.health, asked with curl on the remote host's own loopback."""
        done = self.host.exec(
            [
                "curl",
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--noproxy",
                "*",
                "--max-time",
                f"{timeout:g}",
                self.health_url,
            ],
            timeout=timeout + 15,
        )
        code = done.stdout.strip()
        if done.returncode == 0 and code not in ("", "000"):
            return code
        if done.returncode == 28:  # curl's "operation timed out"
            return "timeout" if code in ("", "000") else "trickle"
        return "down"

    def stack_file_text(self) -> str:
        return self.host.stack_file_text(self)

    def status(self) -> dict[str, Any]:
        return {"remote host": self.host.status(), **super().status()}


def remote_up(host: RemoteHost, bed: RemoteTestbed, stack_file: Path | None = None) -> Path:
    """Host up, stack up inside and healthy; write the stack file; return its path."""
    host.up()
    bed.up()
    target = stack_file or host.state / "stack.toml"
    target.write_text(bed.stack_file_text(), encoding="utf-8")
    return target


def remote_down(host: RemoteHost, bed: RemoteTestbed, volumes: bool = False) -> None:
    """Remove the stack inside (best effort: it goes with the host anyway), then the host."""
    found = host._inspect()
    if found is not None and found["State"]["Running"]:
        with contextlib.suppress(TestbedError):
            bed.down()
    host.down(volumes=volumes)


__all__ = [
    "DEFAULT_NAME",
    "DEFAULT_SSH_PORT",
    "SERVICES",
    "RemoteHost",
    "RemoteTestbed",
    "remote_down",
    "remote_up",
]
