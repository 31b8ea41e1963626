"""`python -m app.sandbox.smtp --host H --port P --admin-port A [--maildir DIR]`"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from app.sandbox import cli
from app.sandbox.serving import start_server
from app.sandbox.smtp import create_smtp_sandbox

log = logging.getLogger("app.sandbox.smtp")


def main() -> None:
    parser = cli.parser("SMTP sink sandbox (keeps what it receives; HTTP admin API)")
    parser.add_argument("--port", type=int, help="SMTP port (default: topology port 'smtp')")
    parser.add_argument(
        "--admin-port", type=int, help="HTTP admin port (default: topology 'partners_metrics')"
    )
    parser.add_argument("--maildir", type=Path, help="also keep messages in this maildir")
    args = parser.parse_args()
    settings = cli.settings_from(
        args, smtp_port=args.port, admin_port=args.admin_port, smtp_maildir=args.maildir
    )

    async def serve(stop: asyncio.Event) -> None:
        sandbox = create_smtp_sandbox(settings.smtp_maildir)
        smtp = await sandbox.listen(settings.host, settings.smtp_port)
        admin = await start_server(sandbox.admin_app, settings.host, settings.admin_port)
        log.info("SMTP sink on %s:%s, admin on %s", settings.host, settings.smtp_port, admin.url)
        await stop.wait()
        smtp.close()
        await smtp.wait_closed()
        await admin.stop()

    cli.run(serve, args.log_level)


if __name__ == "__main__":
    main()
