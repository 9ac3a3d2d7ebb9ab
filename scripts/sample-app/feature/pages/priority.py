"""EXMP-113: items by priority, and a form to change an item's priority.
Needs migration 003 (the priority column)."""
from flask import Blueprint, redirect, render_template, request, url_for

import app as sample

TITLE = "Priorities"
ENDPOINT = "by_priority"
bp = Blueprint("priority", __name__, url_prefix="/priority")


@bp.get("")
def by_priority():
    with sample.conn().cursor() as cur:
        cur.execute("SELECT id, name, priority FROM items ORDER BY priority, name")
        rows = cur.fetchall()
    return render_template("priority.html", items=rows)


@bp.post("/<int:item_id>")
def set_priority(item_id):
    try:
        priority = int(request.form.get("priority", ""))
    except ValueError:
        priority = 0
    if not 1 <= priority <= 5:
        return "A priority is a whole number from 1 to 5.\n", 400
    with sample.conn(), sample.conn().cursor() as cur:
        cur.execute("UPDATE items SET priority = %s WHERE id = %s", (priority, item_id))
        if cur.rowcount == 0:
            return f"There is no item {item_id}.\n", 404
    return redirect(url_for(".by_priority"), 303)
