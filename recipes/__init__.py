"""tinyzoo's built-in recipes: TOML files shipped as package data (``tinyzoo_recipes``)."""
