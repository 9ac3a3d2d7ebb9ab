#!/usr/bin/env python3
"""The background worker: every few seconds it counts the items in Postgres
and writes a heartbeat to Redis (hash "worker": at, beats, items), which the
front page shows. A service that is down is retried, not fatal."""
import os
import signal
import sys
import time

import db

INTERVAL = float(os.environ.get("WORKER_INTERVAL", "2"))
stopping = False


def stop(_signum, _frame):
    global stopping
    stopping = True


def beat(cache, beats):
    conn = db.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM items")
            items = cur.fetchone()[0]
    finally:
        conn.close()
    cache.hset("worker", mapping={"at": time.time(), "beats": beats, "items": items})
    return items


def main():
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    cache = db.cache()
    beats, failing = 0, False
    print(f"worker started, a heartbeat every {INTERVAL:g} s", flush=True)
    while not stopping:
        try:
            items = beat(cache, beats + 1)
            beats += 1
            if failing or beats == 1:
                print(f"heartbeat {beats}: {items} items", flush=True)
            failing = False
        except Exception as e:  # Postgres or Redis restarting: try again next time
            if not failing:
                print(f"heartbeat failed, retrying: {str(e).strip().splitlines()[0]}", flush=True)
            failing = True
        deadline = time.monotonic() + INTERVAL
        while not stopping and time.monotonic() < deadline:
            time.sleep(0.1)
    print(f"worker stopping after {beats} heartbeats", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
