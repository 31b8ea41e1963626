"""`python -m app.sandbox.couriers --host H --port P [--webhook-url URL] [--step-seconds S]`

The webhook secret comes from SANDBOX_COURIERS_WEBHOOK_SECRET (random if unset).
"""

from __future__ import annotations

import asyncio
import logging

from app.sandbox import cli
from app.sandbox.couriers.app import create_app
from app.sandbox.serving import start_server

log = logging.getLogger("app.sandbox.couriers")


def main() -> None:
    parser = cli.parser("Couriers sandbox (swiftpost, globex)")
    parser.add_argument("--port", type=int, help="port (default: topology port 'couriers')")
    parser.add_argument("--webhook-url", help="where to POST signed tracking events")
    parser.add_argument(
        "--step-seconds", type=float, help="tracking advances this often (0: on demand only)"
    )
    args = parser.parse_args()
    settings = cli.settings_from(
        args,
        couriers_port=args.port,
        couriers_webhook_url=args.webhook_url,
        tracking_step_seconds=args.step_seconds,
    )

    async def serve(stop: asyncio.Event) -> None:
        app = create_app(
            origin_country=settings.origin_country,
            tracking_step_seconds=settings.tracking_step_seconds,
            webhook_secret=settings.couriers_webhook_secret.get_secret_value(),
            webhook_url=settings.couriers_webhook_url,
        )
        server = await start_server(app, settings.host, settings.couriers_port)
        log.info("couriers sandbox on %s", server.url)
        await stop.wait()
        await server.stop()

    cli.run(serve, args.log_level)


if __name__ == "__main__":
    main()
