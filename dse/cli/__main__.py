"""``python -m dse.cli``: the ``dse`` command."""

from dse.cli import run

run()
