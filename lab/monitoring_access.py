"""How this machine reaches the lab's Prometheus and Alertmanager, and how an operator does.

Both serve HTTPS only, with a certificate from the lab's CA, and ask every request for
basic auth (playbooks/roles/monitoring). The password is generated on the first
converge into the lab's secrets dir by the `password` lookup of
playbooks/inventories/lab/group_vars/all.yml; the user is the role's default. The lab
CLI, the lab tests and the operator's own tools read the same files, so nothing here
restates the secret: the client files below point at it (amtool, promtool) or are
written beside it with the same permissions (curl).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import requests
import yaml

from .settings import LabSettings

# The monitoring role's default monitoring_web_username (tests/lab/test_lab_plan.py checks it).
USERNAME = "operator"
# lab/state/<lab>/secrets/<this>: the file group_vars/all.yml generates the password into.
PASSWORD_FILE_NAME = "monitoring_web"  # noqa: S105 - a file name, not a password


class MonitoringAccessError(RuntimeError):
    """The lab has no operator password yet: it was never converged."""


@dataclass(frozen=True)
class MonitoringAccess:
    ca_file: Path
    username: str
    password_file: Path

    def password(self) -> str:
        try:
            return self.password_file.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            raise MonitoringAccessError(
                f"{self.password_file} is missing: converge the lab first (make lab)"
            ) from None

    def auth(self) -> tuple[str, str]:
        """(user, password) for basic auth, as requests and httpx take it."""
        return self.username, self.password()

    def session(self) -> requests.Session:
        """A requests session that verifies the lab's CA and logs in as the operator."""
        session = requests.Session()
        # Not the environment's: requests lets REQUESTS_CA_BUNDLE (set on many machines,
        # this one included) override a session's own `verify` on every request.
        session.trust_env = False
        session.verify = str(self.ca_file)
        session.auth = self.auth()
        return session


def for_lab(settings: LabSettings) -> MonitoringAccess:
    return MonitoringAccess(
        ca_file=settings.ca_file,
        username=USERNAME,
        password_file=settings.secrets_dir / PASSWORD_FILE_NAME,
    )


def client_dir(settings: LabSettings) -> Path:
    return settings.state_dir / "monitoring"


def http_config_file(settings: LabSettings) -> Path:
    """amtool's and promtool's --http.config.file (Prometheus's http_config format)."""
    return client_dir(settings) / "http-config.yml"


def curl_config_file(settings: LabSettings) -> Path:
    """curl -K: the CA and the operator's user and password (0600, like the secret itself)."""
    return client_dir(settings) / "curl.conf"


def write_client_files(settings: LabSettings) -> dict[str, Path]:
    """The operator's client files in lab/state/<lab>/monitoring/, rewritten every time."""
    access = for_lab(settings)
    password = access.password()
    folder = client_dir(settings)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    http_config = http_config_file(settings)
    http_config.write_text(
        "# amtool --http.config.file=THIS / promtool ... --http.config.file=THIS\n"
        + yaml.safe_dump(
            {
                "basic_auth": {
                    "username": access.username,
                    "password_file": str(access.password_file),
                },
                "tls_config": {"ca_file": str(access.ca_file)},
            },
            sort_keys=False,
        ),
        encoding="utf-8",
    )
    quoted = password.replace("\\", "\\\\").replace('"', '\\"')
    curl_config = curl_config_file(settings)
    curl_config.touch(mode=0o600)
    curl_config.chmod(0o600)
    curl_config.write_text(
        "# curl -K THIS https://127.0.0.1:<port>/...\n"
        f'cacert = "{access.ca_file}"\n'
        f'user = "{access.username}:{quoted}"\n',
        encoding="utf-8",
    )
    return {"http_config": http_config, "curl_config": curl_config}
