"""The wiring, once: where the contract files live, how they are read and written, and the
recipes of the pipeline — used alike by the CLI (and so the Snakemake rules) and the search.

* :mod:`dse.pipeline.layout` — :class:`Layout`, one method per contract file.
* :mod:`dse.pipeline.files` — atomic writes; a write fault is one :class:`~dse.errors.DseError`.
* :mod:`dse.pipeline.artifacts` — every read and write of a contract file (models, mappings,
  cards, tables, trials), with checks.
* :mod:`dse.pipeline.settings` — :class:`InjectSettings` from ``config["inject"]``.
* :mod:`dse.pipeline.recipes` — train an experiment, inject / estimate a chip, evaluate one
  design point (an Optuna trial).
* :mod:`dse.pipeline.study` — a co-design study: initialise, run a worker, aggregate.
* :mod:`dse.pipeline.collect` — the report's inputs and provenance; write the report.

Import order: the faces (``dse.cli``, ``workflow/``) import this package; it imports the stages
(``dse.search``, ``dse.report``, ``dse.chip``, ``dse.train``, ``dse.devices``, ``dse.nn``),
which never import it (checked by the import-linter contracts in ``pyproject.toml``).
"""

from dse.pipeline.layout import Layout
from dse.pipeline.settings import InjectSettings

__all__ = ["InjectSettings", "Layout"]
