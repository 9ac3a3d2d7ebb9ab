"""Pages beyond the front page: each module here has a Blueprint `bp` and a
`TITLE` for the navigation bar, and is registered at start-up. A feature adds
a page by adding a module."""
import importlib
import pkgutil

NAV = []  # (title, endpoint), in module name order


def register(app):
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        app.register_blueprint(module.bp)
        NAV.append((module.TITLE, f"{module.bp.name}.{module.ENDPOINT}"))
