"""gunicorn settings for production serving (`python -m app.serve` passes this file).

Workers are uvicorn's (uvicorn-worker). On SIGTERM the master stops accepting,
tells each worker to finish its in-flight requests (up to GRACEFUL_TIMEOUT
seconds), then exits: a rolling deploy drops no request.
"""

from __future__ import annotations

import os
from typing import Any

from app.observability.metrics import mark_worker_dead
from app.settings import get_settings
from app.tls import TLS12_AEAD_CIPHERS

_settings = get_settings()

bind = [f"{_settings.bind_host}:{_settings.port}"]
if _settings.tls_cert_file is not None and _settings.tls_key_file is not None:
    certfile = str(_settings.tls_cert_file)
    keyfile = str(_settings.tls_key_file)
    # uvicorn's workers build their own SSL context from these settings (gunicorn's
    # ssl_context hook is not used by them): the cipher list is the way in.
    ciphers = TLS12_AEAD_CIPHERS
workers = _settings.web_concurrency
worker_class = "uvicorn_worker.UvicornWorker"
graceful_timeout = int(os.environ.get("GRACEFUL_TIMEOUT", "30"))
timeout = 60
keepalive = 5
backlog = 2048
accesslog = None  # the app writes its own JSON access log
errorlog = "-"
loglevel = _settings.log_level.lower()
# Trust X-Forwarded-For only from the load balancer (set FORWARDED_ALLOW_IPS to its address).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
proc_name = "shop"
# The master's own messages as JSON too, like the app's (workers reconfigure on start).
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(levelname)s %(name)s %(message)s",
            "rename_fields": {"levelname": "level", "name": "logger"},
            "timestamp": "ts",
        }
    },
    "handlers": {"stdout": {"class": "logging.StreamHandler", "formatter": "json"}},
    "root": {"handlers": ["stdout"], "level": loglevel.upper()},
    "loggers": {
        "gunicorn.error": {"handlers": ["stdout"], "level": loglevel.upper(), "propagate": False}
    },
}


def child_exit(_server: Any, worker: Any) -> None:
    mark_worker_dead(worker.pid)
