"""The `personas` command line."""

from __future__ import annotations

from pipeline.cli import bot as _bot  # noqa: F401 (registers bot init, timeline, run)
from pipeline.cli import datasets as _datasets  # noqa: F401 (registers build, report, publish)
from pipeline.cli import discord as _discord  # noqa: F401 (registers discord extract, users, generate)
from pipeline.cli import hydrate as _hydrate  # noqa: F401 (registers hydrate urls, images, stats)
from pipeline.cli import serving as _serving  # noqa: F401 (registers serve, persona, chat, naptha)
from pipeline.cli import train as _train  # noqa: F401 (registers train ..., eval)
from pipeline.cli.app import app


def main() -> None:
    app(prog_name="personas")


if __name__ == "__main__":  # pragma: no cover
    main()
