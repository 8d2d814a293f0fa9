"""The dataset value every command's ``--data`` (and ``tinyzoo data info|prepare DIR``) takes.

One click type, so that every command accepts the same things (see :mod:`tinyzoo.data.sources`):
a folder in the Tiny ImageNet layout, class folders (``train/<class>/*.jpg``), a folder of
Parquet files, or ``hf:ORG/NAME[@REV]``. A Hub value is fetched while the command line is read
and becomes its snapshot folder in the Hugging Face cache, so the command (and a run
directory's run.json) sees a local folder. Nothing is imported until a value is converted.
"""

from __future__ import annotations

from pathlib import Path

import click

DATA_HELP = (
    "Dataset: a folder in the tiny-imagenet-200 layout, class folders (train/<class>/*.jpg, val/<class>/*.jpg), "
    "Parquet files, or hf:ORG/NAME[@REV] (a Hugging Face Hub dataset, e.g. hf:zh-plus/tiny-imagenet)"
)


class DataSource(click.ParamType):
    """A ``--data`` value, converted to the local folder it names (a Hub dataset is fetched first)."""

    name = "data"

    def convert(self, value, param, ctx) -> Path:
        if isinstance(value, Path) or (ctx is not None and ctx.resilient_parsing):
            return Path(value)
        from tinyzoo.data.sources import local_root

        return local_root(value)


DATA = DataSource()
