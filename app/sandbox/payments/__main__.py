"""`python -m app.sandbox.payments --host H --port P [--webhook-url URL]`

The webhook secret comes from SANDBOX_PAYMENTS_WEBHOOK_SECRET (random if unset), the
API key it requires from SANDBOX_PAYMENTS_API_KEY (none required if unset).
"""

from __future__ import annotations

import asyncio
import logging

from app.sandbox import cli
from app.sandbox.payments.app import create_app
from app.sandbox.serving import start_server

log = logging.getLogger("app.sandbox.payments")


def main() -> None:
    parser = cli.parser("Payment providers sandbox (card-primary, card-secondary, wallet, crypto)")
    parser.add_argument("--port", type=int, help="port (default: topology port 'payments')")
    parser.add_argument("--webhook-url", help="where to POST signed events (the shop's endpoint)")
    args = parser.parse_args()
    settings = cli.settings_from(
        args, payments_port=args.port, payments_webhook_url=args.webhook_url
    )

    async def serve(stop: asyncio.Event) -> None:
        app = create_app(
            webhook_secret=settings.payments_webhook_secret.get_secret_value(),
            webhook_url=settings.payments_webhook_url,
            api_key=settings.payments_key(),
        )
        server = await start_server(app, settings.host, settings.payments_port)
        log.info("payments sandbox on %s", server.url)
        await stop.wait()
        await server.stop()

    cli.run(serve, args.log_level)


if __name__ == "__main__":
    main()
