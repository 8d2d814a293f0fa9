"""tinyzoo's built-in plugins (importable as ``tinyzoo_plugins``).

Each module here is declared in tinyzoo's ``pyproject.toml`` under the ``tinyzoo``
entry-point group and is loaded exactly like a third-party plugin.
"""
