"""The items as JSON, for scripts and tests: GET /api/items"""
from flask import Blueprint, jsonify

import app as sample

TITLE = "API"
ENDPOINT = "items"
bp = Blueprint("api", __name__, url_prefix="/api")


@bp.get("/items")
def items():
    return jsonify([{"name": n, "description": d, "created_at": c.isoformat()}
                    for n, d, c in sample.items()])
