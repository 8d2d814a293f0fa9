"""Built-in plugin: every ``recipes/*.toml`` file shipped in ``tinyzoo_recipes``, as a named recipe.

The recipe's name is the file's stem; its description is the file's ``description``
field (a file that does not parse still registers, and fails when it is used).
"""

from __future__ import annotations

from importlib import resources

import tinyzoo
from tinyzoo.specs import RecipeSpec


def recipe_files() -> list:
    """The built-in recipe files, sorted by name."""
    return sorted((f for f in resources.files("tinyzoo_recipes").iterdir() if f.name.endswith(".toml")), key=lambda f: f.name)


def describe(path) -> str:
    from tinyzoo.recipe import read_toml

    try:
        description = read_toml(path).get("description", "")
    except Exception:  # reported with the file's name when the recipe is loaded
        return ""
    return description if isinstance(description, str) else ""


@tinyzoo.hookimpl
def register_recipes(register):
    for f in recipe_files():
        path = str(f)
        register(RecipeSpec(name=f.name[: -len(".toml")], path=path, description=describe(path)))
