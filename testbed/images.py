"""Build the testbed's images without a registry.

The base image is a debootstrapped Debian rootfs imported with ``docker import``;
the service images only COPY onto it (containers have no route out). Every tag
is a hash of its inputs, so a second run reuses what the first built.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
MIRROR = "http://deb.debian.org/debian"
SUITE = "bookworm"
BASE_PACKAGES = (
    "postgresql-15",
    "python3",
    "python3-fastapi",
    "python3-uvicorn",
    "python3-psycopg",
    "curl",
    "iputils-ping",
    "netcat-openbsd",
    "procps",
    "iproute2",
)
SERVICE_DIRS = ("backend", "db")


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.hexdigest()[:12]


def _image_exists(tag: str) -> bool:
    done = subprocess.run(["docker", "image", "inspect", tag], capture_output=True, check=False)
    return done.returncode == 0


def base_tag() -> str:
    spec = f"{SUITE} {MIRROR} {' '.join(BASE_PACKAGES)}".encode()
    return f"stackcheck-testbed-base:{_digest(spec)}"


def service_tag(service: str) -> str:
    folder = HERE / service
    parts = [base_tag().encode()]
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        parts += [str(path.relative_to(folder)).encode(), path.read_bytes()]
    return f"stackcheck-testbed-{service}:{_digest(*parts)}"


def build_base() -> str:
    tag = base_tag()
    if _image_exists(tag):
        return tag
    print(f"building {tag} with debootstrap (about a minute)", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix="stackcheck-rootfs-") as rootfs:
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(BASE_PACKAGES)}",
                SUITE,
                rootfs,
                MIRROR,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        # Drop the apt caches: they make the image 100 MB larger for nothing.
        subprocess.run(
            ["rm", "-rf", f"{rootfs}/var/cache/apt/archives", f"{rootfs}/var/lib/apt/lists"],
            check=True,
        )
        tar = subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(
            ["docker", "import", "-", tag], stdin=tar.stdout, check=True, stdout=subprocess.DEVNULL
        )
        if tar.wait() != 0:
            raise SystemExit(f"tar of {rootfs} failed")
    return tag


def build_service(service: str) -> str:
    tag = service_tag(service)
    if _image_exists(tag):
        return tag
    print(f"building {tag}", file=sys.stderr, flush=True)
    subprocess.run(
        [
            "docker",
            "build",
            "-q",
            "--build-arg",
            f"BASE={build_base()}",
            "-t",
            tag,
            str(HERE / service),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return tag


def build_all() -> dict[str, str]:
    """Build (or reuse) every testbed image; return compose's image variables."""
    build_base()
    return {f"{s.upper()}_IMAGE": build_service(s) for s in SERVICE_DIRS}


if __name__ == "__main__":
    for key, value in build_all().items():
        print(f"{key}={value}")
