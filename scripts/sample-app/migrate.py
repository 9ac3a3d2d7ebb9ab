#!/usr/bin/env python3
"""Applies migrations/NNN_name.sql in order, each in its own transaction.

    python3 migrate.py            apply what is pending
    python3 migrate.py --status   list each migration as applied or pending

The versions applied are rows of schema_migrations. A migration that fails is
rolled back whole (nothing of it stays, and it is not recorded), the error
PostgreSQL gave is printed, and the exit code is 1: the deploy stops at its
migrate step. Two runs at once take turns (an advisory lock).
"""
import os
import re
import sys
import time

import psycopg2

import db

MIGRATIONS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "migrations")
NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")
LOCK_KEY = 7201113  # any constant: the advisory lock that serialises runs


def migrations():
    """(version, file name) sorted by version; exits on a bad or duplicate name."""
    found = {}
    for name in sorted(os.listdir(MIGRATIONS)):
        if not name.endswith(".sql"):
            continue
        m = NAME.match(name)
        if not m:
            sys.exit(f"migrate: {name}: a migration is named NNN_words.sql (e.g. 004_add_tags.sql)")
        version = m.group(1)
        if version in found:
            sys.exit(f"migrate: {found[version]} and {name} both have version {version}")
        found[version] = name
    return sorted(found.items())


def applied(conn):
    with conn, conn.cursor() as cur:
        cur.execute("""CREATE TABLE IF NOT EXISTS schema_migrations (
                           version    text PRIMARY KEY,
                           name       text NOT NULL,
                           applied_at timestamptz NOT NULL DEFAULT now())""")
        cur.execute("SELECT version FROM schema_migrations")
        return {row[0] for row in cur.fetchall()}


def apply(conn, version, name):
    with open(os.path.join(MIGRATIONS, name), encoding="utf-8") as f:
        sql = f.read()
    started = time.monotonic()
    try:
        with conn, conn.cursor() as cur:  # one transaction: commit, or roll back on error
            cur.execute(sql)
            cur.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                        (version, name))
    except psycopg2.Error as e:
        detail = (e.pgerror or str(e)).strip()
        print(f"migrate: {name} failed and was rolled back:\n{detail}", file=sys.stderr)
        return False
    print(f"applied {name} ({(time.monotonic() - started) * 1000:.0f} ms)", flush=True)
    return True


def main():
    status_only = sys.argv[1:] == ["--status"]
    if sys.argv[1:] and not status_only:
        sys.exit("usage: migrate.py [--status]")
    files = migrations()
    conn = db.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        conn.commit()
        done = applied(conn)
        known = {v for v, _ in files}
        for version in sorted(done - known):
            print(f"migrate: warning: version {version} is applied but has no file here",
                  file=sys.stderr)
        pending = [(v, n) for v, n in files if v not in done]
        if status_only:
            for version, name in files:
                print(f"{'applied' if version in done else 'pending'} {name}")
            return 0
        for version, name in pending:
            if not apply(conn, version, name):
                return 1
        latest = max(done | {v for v, _ in pending}, default="none")
        print(f"{len(pending)} applied, {len(done)} already there; schema at version {latest}")
        return 0
    finally:
        conn.close()  # also releases the advisory lock


if __name__ == "__main__":
    sys.exit(main())
