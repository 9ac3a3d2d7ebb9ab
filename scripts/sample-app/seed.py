#!/usr/bin/env python3
"""Fills the tables with the rows QA starts from. Safe to run again: a row
that is there already (same name) is left as it is."""
import sys

import db

ITEMS = [
    ("Check out as a guest", "The checkout works without an account."),
    ("Apply a discount code", "SAVE10 takes 10% off the basket."),
    ("Reset a password", "The reset mail arrives and its link works once."),
    ("Search for a product", "Typing 'lamp' finds the desk lamp."),
    ("Change the delivery address", "A saved address can be edited before paying."),
]


def main():
    conn = db.connect()
    try:
        with conn, conn.cursor() as cur:
            added = 0
            for name, description in ITEMS:
                cur.execute("""INSERT INTO items (name, description) VALUES (%s, %s)
                               ON CONFLICT (name) DO NOTHING""", (name, description))
                added += cur.rowcount
            cur.execute("SELECT count(*) FROM items")
            total = cur.fetchone()[0]
    finally:
        conn.close()
    print(f"seeded {added} new items ({total} in the table)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
