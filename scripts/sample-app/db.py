"""Connections to the environment's own Postgres and Redis.

qabox gives every environment its own instances and passes their addresses
(with a password generated for that environment) as DATABASE_URL and
REDIS_URL. Nothing here prints those URLs: they carry the password.
"""
import os
import sys

import psycopg2
import redis

# A request or a health check waits at most this long for either service.
TIMEOUT_SECONDS = 3


def _url(name, service):
    url = os.environ.get(name)
    if not url:
        sys.exit(f"{name} is not set: qabox.toml must ask for [services.{service}]")
    return url


def connect():
    """A new Postgres connection (the caller closes it)."""
    return psycopg2.connect(_url("DATABASE_URL", "postgres"),
                            connect_timeout=TIMEOUT_SECONDS,
                            application_name=os.path.basename(sys.argv[0]) or "sample")


def cache():
    """A Redis client; it connects on first use and reconnects after a failure."""
    return redis.Redis.from_url(_url("REDIS_URL", "redis"),
                                socket_timeout=TIMEOUT_SECONDS,
                                socket_connect_timeout=TIMEOUT_SECONDS,
                                decode_responses=True)
