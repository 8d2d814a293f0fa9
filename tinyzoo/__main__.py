"""``python -m tinyzoo``: the command line, once it is sure that ``tinyzoo`` is this package.

Run from the folder that holds a clone named ``tinyzoo/``, Python takes that folder (which
has no ``__init__.py``) for an empty namespace package in front of an editable install; this
file is still found through the install, so it is where the mix-up can be caught and named.
"""

import sys

import tinyzoo

if getattr(tinyzoo, "__file__", None) is None:  # a namespace package: no tinyzoo/__init__.py ran
    folder = next(iter(tinyzoo.__path__), "tinyzoo")
    sys.exit(f"Error: the folder {folder} (no __init__.py: a clone of tinyzoo?) hides the installed tinyzoo from "
             "`python -m tinyzoo` run here; run it from another folder (e.g. inside the clone), or run the `tinyzoo` command")

from tinyzoo.cli import main

main()
