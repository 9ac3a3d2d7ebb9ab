"""The sample app qabox deploys: a list of QA items in Postgres, a visit
counter and a worker heartbeat in Redis, and a health check of both.

Served by gunicorn (see qabox.toml): gunicorn app:app
"""
import os
import time

import psycopg2
import psycopg2.errors
from flask import Flask, Response, g, redirect, render_template, request, url_for

import db
import pages

app = Flask(__name__)
app.jinja_env.trim_blocks = True
app.jinja_env.lstrip_blocks = True


def conn():
    """This request's Postgres connection, opened on first use."""
    if "db" not in g:
        g.db = db.connect()
    return g.db


def cache():
    if "cache" not in g:
        g.cache = db.cache()
    return g.cache


@app.teardown_appcontext
def close(_exc):
    c = g.pop("db", None)
    if c is not None:
        c.close()
    r = g.pop("cache", None)
    if r is not None:
        r.close()


@app.errorhandler(psycopg2.OperationalError)
def database_down(e):
    return Response(f"the database is not answering: {first_line(e)}\n", 503,
                    mimetype="text/plain")


def first_line(e):
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


@app.context_processor
def environment():
    return {
        "ticket": os.environ.get("QABOX_TICKET", "local"),
        "commit": os.environ.get("QABOX_COMMIT", "")[:12],
        "branch": os.environ.get("QABOX_SOURCE_BRANCH", ""),
        "nav": pages.NAV,
    }


def items():
    with conn().cursor() as cur:
        cur.execute("""SELECT name, description, created_at FROM items
                       ORDER BY created_at DESC, id DESC""")
        return cur.fetchall()


def visits():
    """Counts this page view; None when Redis is not answering."""
    try:
        return cache().incr("visits")
    except Exception as e:  # the page still shows the items without Redis
        app.logger.warning("visit counter: %s", first_line(e))
        return None


def heartbeat():
    """What worker.py last wrote: {'age': seconds, 'beats': n, 'seen': items}, or None."""
    try:
        beat = cache().hgetall("worker")
    except Exception as e:
        app.logger.warning("worker heartbeat: %s", first_line(e))
        return None
    if not beat:
        return None
    return {"age": max(0.0, time.time() - float(beat["at"])), "beats": int(beat["beats"]),
            "seen": int(beat["items"])}


@app.get("/")
def index():
    rows = items()
    count, beat = visits(), heartbeat()
    if request.accept_mimetypes.best_match(["text/html", "text/plain"]) == "text/plain":
        return Response(render_template("index.txt", items=rows, visits=count, beat=beat),
                        mimetype="text/plain")
    return render_template("index.html", items=rows, visits=count, beat=beat,
                           error=request.args.get("error"))


@app.post("/items")
def add_item():
    name = request.form.get("name", "").strip()
    description = request.form.get("description", "").strip()
    if not 1 <= len(name) <= 200:
        return redirect(url_for("index", error="An item needs a name of 1 to 200 characters."), 303)
    try:
        with conn(), conn().cursor() as cur:
            cur.execute("INSERT INTO items (name, description) VALUES (%s, %s)",
                        (name, description))
    except psycopg2.errors.UniqueViolation:
        return redirect(url_for("index", error=f"There is an item named {name!r} already."), 303)
    return redirect(url_for("index"), 303)


@app.get("/healthz")
def healthz():
    """200 "ok" when Postgres answers SELECT 1 and Redis answers PING; else 503
    naming what failed."""
    failed = []
    try:
        c = db.connect()
        try:
            with c.cursor() as cur:
                cur.execute("SELECT 1")
                cur.fetchone()
        finally:
            c.close()
    except psycopg2.Error as e:
        failed.append(f"database: {first_line(e)}")
    try:
        r = db.cache()
        try:
            r.ping()
        finally:
            r.close()
    except Exception as e:
        failed.append(f"redis: {first_line(e)}")
    if failed:
        return Response("\n".join(failed) + "\n", 503, mimetype="text/plain")
    return Response("ok\n", mimetype="text/plain")


pages.register(app)
