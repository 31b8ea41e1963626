"""`python -m app.sandbox`: every partner sandbox in one process, on the topology's ports.

    payments  (HTTP)  topology port `payments`          card-primary, card-secondary, wallet, crypto
    couriers  (HTTP)  topology port `couriers`          swiftpost, globex
    smtp      (SMTP)  topology port `smtp`              the mail sink
    admin     (HTTP)  topology port `partners_metrics`  /metrics, /admin/faults, /smtp/messages

Every port can be overridden (flags, or SANDBOX_* variables); --port-offset N
shifts all four, so a second set can run beside the lab's.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from app.sandbox import cli
from app.sandbox.couriers import COURIERS
from app.sandbox.couriers import create_app as create_couriers_app
from app.sandbox.faults import FaultBoard
from app.sandbox.http import sandbox_app
from app.sandbox.payments import PROVIDERS
from app.sandbox.payments import create_app as create_payments_app
from app.sandbox.serving import RunningServer, start_server
from app.sandbox.settings import SandboxSettings
from app.sandbox.smtp import SERVICE as SMTP_SERVICE
from app.sandbox.smtp import create_smtp_sandbox
from app.sandbox.smtp.app import messages_router

log = logging.getLogger("app.sandbox")


class AllSandboxes:
    """Everything `python -m app.sandbox` runs; also started in-process by tests."""

    def __init__(self, settings: SandboxSettings) -> None:
        self.settings = settings
        self.faults = FaultBoard(
            [*PROVIDERS, *COURIERS, SMTP_SERVICE], declining_services=PROVIDERS
        )
        self.payments_app = create_payments_app(
            webhook_secret=settings.payments_webhook_secret.get_secret_value(),
            webhook_url=settings.payments_webhook_url,
            faults=self.faults,
            api_key=settings.payments_key(),
        )
        self.couriers_app = create_couriers_app(
            origin_country=settings.origin_country,
            tracking_step_seconds=settings.tracking_step_seconds,
            webhook_secret=settings.couriers_webhook_secret.get_secret_value(),
            webhook_url=settings.couriers_webhook_url,
            faults=self.faults,
        )
        self.smtp = create_smtp_sandbox(settings.smtp_maildir, faults=self.faults)
        self.admin_app = sandbox_app("Partner sandboxes admin", self.faults)
        self.admin_app.include_router(messages_router(self.smtp.sink), prefix="/smtp")
        self._servers: list[RunningServer] = []
        self._smtp_server: asyncio.Server | None = None

    async def start(self) -> dict[str, str]:
        s = self.settings
        tls = (str(s.tls_cert_file), str(s.tls_key_file)) if s.tls_context() else None
        for app, port, app_tls in (
            (self.payments_app, s.payments_port, tls),
            (self.couriers_app, s.couriers_port, tls),
            (self.admin_app, s.admin_port, None),
        ):
            self._servers.append(await start_server(app, s.host, port, tls=app_tls))
        self._smtp_server = await self.smtp.listen(
            s.host, s.smtp_port, s.tls_context(), s.smtp_login()
        )
        smtp_port = self._smtp_server.sockets[0].getsockname()[1]
        payments, couriers, admin = (server.url for server in self._servers)
        return {
            "payments": payments,
            "couriers": couriers,
            "admin": admin,
            "smtp": f"smtp://{s.host}:{smtp_port}",
        }

    async def stop(self) -> None:
        if self._smtp_server is not None:
            self._smtp_server.close()
            await self._smtp_server.wait_closed()
        for server in reversed(self._servers):
            await server.stop()
        self._servers.clear()


def main() -> None:
    parser = cli.parser("All partner sandboxes in one process (payments, couriers, SMTP, admin)")
    parser.add_argument("--payments-port", type=int)
    parser.add_argument("--couriers-port", type=int)
    parser.add_argument("--smtp-port", type=int)
    parser.add_argument("--admin-port", type=int, help="metrics and fault admin")
    parser.add_argument("--port-offset", type=int, default=0, help="added to every port")
    parser.add_argument("--payments-webhook-url", help="the shop's payment webhook endpoint")
    parser.add_argument("--couriers-webhook-url", help="the shop's courier webhook endpoint")
    parser.add_argument("--step-seconds", type=float, help="tracking step (0: on demand only)")
    parser.add_argument("--maildir", type=Path, help="also keep received mail in this maildir")
    args = parser.parse_args()
    base = cli.settings_from(
        args,
        payments_port=args.payments_port,
        couriers_port=args.couriers_port,
        smtp_port=args.smtp_port,
        admin_port=args.admin_port,
        payments_webhook_url=args.payments_webhook_url,
        couriers_webhook_url=args.couriers_webhook_url,
        tracking_step_seconds=args.step_seconds,
        smtp_maildir=args.maildir,
    )
    if args.port_offset:
        base = base.model_copy(
            update={
                name: getattr(base, name) + args.port_offset
                for name in ("payments_port", "couriers_port", "smtp_port", "admin_port")
            }
        )

    async def serve(stop: asyncio.Event) -> None:
        sandboxes = AllSandboxes(base)
        urls = await sandboxes.start()
        for name, url in urls.items():
            log.info("%-8s %s", name, url)
        await stop.wait()
        await sandboxes.stop()

    cli.run(serve, args.log_level)


if __name__ == "__main__":
    main()
