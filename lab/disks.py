"""The app servers' /var/log on a filesystem of its own: a small ext4 image under
lab/state/<lab>/disks, loop-mounted on this machine and bound into the host.

Why: a lab host's root is an overlay on this machine's disk, so filling it (the disk-fill
drill) would fill the machine. A separate log volume is also what a hardened host has
(CIS: /var/log on its own partition); node_exporter reports it like any disk, so the
HostDisk* alerts watch it as they watch a root volume on AWS.

The image is made once per host (sparse, `LOG_VOLUME_MIB`), seeded with the base image's
own /var/log while it is empty, and mounted again after this machine restarts. `release`
unmounts every volume of the lab (the loop device goes with it); the lab's teardown calls
it before the state folder is removed.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from . import podman
from .settings import LabSettings

LOG_VOLUME_MIB = 256
LOG_MOUNTPOINT = "/var/log"
LOG_VOLUME_TIERS = frozenset({"app"})


class DiskError(RuntimeError):
    """A log volume could not be made or mounted; the message says what to check."""


def _disks_dir(settings: LabSettings) -> Path:
    return settings.state_dir / "disks"


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0:
        raise DiskError(
            f"{' '.join(command)} exited {done.returncode}: {done.stderr.strip()} "
            "(the lab's log volumes need root and loop devices: `losetup -f` must answer)"
        )


def ensure_log_volume(settings: LabSettings, host: str, image: str) -> Path:
    """The mounted log volume of `host` (made and seeded on first use)."""
    disks = _disks_dir(settings)
    disks.mkdir(parents=True, exist_ok=True)
    file = disks / f"{host}.img"
    mountpoint = disks / host
    if os.path.ismount(mountpoint):
        return mountpoint
    if not file.exists():
        with file.open("wb") as sparse:
            sparse.truncate(LOG_VOLUME_MIB * 1024 * 1024)
        _run(["mkfs.ext4", "-q", "-L", f"{host}-log"[:16], str(file)])
    mountpoint.mkdir(exist_ok=True)
    _run(["mount", "-o", "loop", str(file), str(mountpoint)])
    # seeded while it holds nothing but mkfs's lost+found (also after a seeding cut short)
    if {entry.name for entry in mountpoint.iterdir()} <= {"lost+found"}:
        podman.run(
            [
                "run", "--rm", *podman.RUN_ULIMITS, "--entrypoint", "/bin/cp",
                "--volume", f"{mountpoint}:/seed",
                image, "-a", f"{LOG_MOUNTPOINT}/.", "/seed/",
            ]
        )  # fmt: skip
    return mountpoint


def release(settings: LabSettings) -> list[str]:
    """Unmount every log volume of the lab; the names of the hosts whose volume it was."""
    disks = _disks_dir(settings)
    released = []
    for mountpoint in sorted(disks.iterdir()) if disks.is_dir() else []:
        if mountpoint.is_dir() and os.path.ismount(mountpoint):
            _run(["umount", str(mountpoint)])
            released.append(mountpoint.name)
    return released
