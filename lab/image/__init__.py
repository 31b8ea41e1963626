"""The lab's Debian 12 host image: debootstrap, the packages every role needs, podman import.

No image registry is reachable, so the image is built from Debian's mirror and
cached in podman's store under a tag that hashes the package list and this
recipe: an unchanged recipe reuses the image, a changed one rebuilds it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from lab import podman

PACKAGES_FILE = Path(__file__).with_name("packages.txt")
IMAGE_REPO = "localhost/shoplab-base"
BASE_LABEL = "shoplab.base"
SUITE = "bookworm"
# what debootstrap itself must bring: an init, sshd, and python for Ansible
BOOTSTRAP_PACKAGES = ("systemd", "systemd-sysv", "dbus", "openssh-server", "python3")
# units the image starts by default; every other packaged service is disabled so
# that a host runs only what its roles enable
KEEP_ENABLED = {"ssh.service", "remote-fs.target", "lab-ssh-hostkeys.service"}
RECIPE_VERSION = "3"

HOSTKEYS_UNIT = """\
[Unit]
Description=Generate this host's own SSH host keys (the image ships none)
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=multi-user.target
"""


class ImageBuildError(RuntimeError):
    """The image could not be built; the message names the failing step."""


def packages() -> list[str]:
    names = []
    for line in PACKAGES_FILE.read_text(encoding="utf-8").splitlines():
        name = line.split("#", 1)[0].strip()
        if name:
            names.append(name)
    return names


def tag() -> str:
    digest = hashlib.sha256()
    digest.update(RECIPE_VERSION.encode())
    digest.update(" ".join(BOOTSTRAP_PACKAGES).encode())
    digest.update(" ".join(sorted(packages())).encode())
    return f"{IMAGE_REPO}:{digest.hexdigest()[:12]}"


def mirror() -> str:
    return os.environ.get("LAB_DEBIAN_MIRROR", "http://deb.debian.org/debian")


def _step(description: str, command: list[str], **kwargs: object) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)  # noqa: S603
    if result.returncode != 0:
        tail = (result.stdout + result.stderr).strip().splitlines()[-15:]
        raise ImageBuildError(f"{description} failed ({result.returncode}):\n" + "\n".join(tail))


def _chroot(rootfs: Path, description: str, script: str) -> None:
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "DEBIAN_FRONTEND": "noninteractive",
        "LANG": "C.UTF-8",
    }
    _step(description, ["chroot", str(rootfs), "/bin/sh", "-euc", script], env=env)


def _install_packages(rootfs: Path) -> None:
    sources = (
        f"deb {mirror()} {SUITE} main\n"
        f"deb {mirror()} {SUITE}-updates main\n"
        f"deb {mirror().replace('/debian', '/debian-security')} {SUITE}-security main\n"
    )
    (rootfs / "etc/apt/sources.list").write_text(sources, encoding="utf-8")
    # Debian's maintainer scripts must not try to start services inside the build
    policy = rootfs / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n", encoding="utf-8")
    policy.chmod(0o755)
    proc = rootfs / "proc"
    _step("mount /proc", ["mount", "-t", "proc", "proc", str(proc)])
    try:
        _chroot(
            rootfs,
            "apt-get install",
            "apt-get update -qq && apt-get install -y -qq --no-install-recommends "
            + " ".join(packages()),
        )
    finally:
        subprocess.run(["umount", str(proc)], check=False)  # noqa: S603, S607
    policy.unlink()


def _finish(rootfs: Path) -> None:
    unit = rootfs / "etc/systemd/system/lab-ssh-hostkeys.service"
    unit.write_text(HOSTKEYS_UNIT, encoding="utf-8")
    wants = rootfs / "etc/systemd/system/multi-user.target.wants"
    enabled = sorted(p.name for p in wants.iterdir())
    to_disable = [u for u in enabled if u not in KEEP_ENABLED]
    script = "systemctl enable lab-ssh-hostkeys.service"
    if to_disable:
        script += " && systemctl disable " + " ".join(to_disable)
    _chroot(rootfs, "systemctl enable/disable", script)
    # every host generates its own identity at first boot
    for key in (rootfs / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    (rootfs / "etc/machine-id").write_text("", encoding="utf-8")
    # the package lists stay: the roles' apt tasks then work without an update
    for path in (rootfs / "var/cache/apt/archives").glob("*.deb"):
        path.unlink()
    for path in (rootfs / "var/cache/apt").glob("*.bin"):
        path.unlink()


def build(image_tag: str) -> None:
    if os.geteuid() != 0:
        raise ImageBuildError("building the lab image needs root (debootstrap, chroot)")
    if shutil.which("debootstrap") is None:
        raise ImageBuildError("debootstrap is not installed (make deps installs it)")
    with tempfile.TemporaryDirectory(prefix="shoplab-image-", dir="/var/tmp") as work:
        rootfs = Path(work) / "rootfs"
        _step(
            "debootstrap",
            [
                "debootstrap",
                "--variant=minbase",
                "--include=" + ",".join(BOOTSTRAP_PACKAGES),
                SUITE,
                str(rootfs),
                mirror(),
            ],
        )
        _install_packages(rootfs)
        _finish(rootfs)
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)  # noqa: S603, S607
        imported = subprocess.run(  # noqa: S603
            [
                podman.binary(),
                *podman.GLOBAL_FLAGS,
                "import",
                "--change",
                'CMD ["/sbin/init"]',
                "--change",
                f"LABEL {BASE_LABEL}=1",
                "-",
                image_tag,
            ],
            stdin=tar.stdout,
            capture_output=True,
            text=True,
            check=False,
        )
        tar.wait()
        if imported.returncode != 0 or tar.returncode != 0:
            raise ImageBuildError(f"podman import failed: {imported.stderr.strip()}")


def ensure() -> tuple[str, bool]:
    """The image tag, building it when absent. Returns (tag, built_now)."""
    image_tag = tag()
    if podman.exists("image", image_tag):
        return image_tag, False
    build(image_tag)
    return image_tag, True


def stale_images() -> list[str]:
    """Base images of older recipes (kept until `lab prune-images`)."""
    current = tag()
    out = podman.run(
        ["images", "--filter", f"reference={IMAGE_REPO}", "--format", "{{.Repository}}:{{.Tag}}"]
    )
    return [ref for ref in out.stdout.split() if ref != current]
