"""Examples beside the core, not in it.

Each example is a package here that reaches modelcycle only through the seams a user's own
project uses too, so that any of them could live in the user's repository instead:

- its data: a source in modelcycle.yaml (the taxi example's warehouse is a plain ``duckdb`` source);
- its features: ``features.builder``, an import path into the example's package;
- its ground truth, if it has one: ``reference.factory`` (see :mod:`modelcycle.lifecycle.reference`);
- its workspace: ``create(root, *, force, progress, **options)`` in its ``workspace`` module, built
  with :func:`modelcycle.lifecycle.workspace.create_from_config`.

Its ``__init__`` says what it is (``ABOUT``, one line) and where its first cycle is
(``FIRST_WINDOW``), and imports nothing: a logged model imports the example's feature module,
and nothing else should come with it. ``modelcycle init --example NAME`` and ``modelcycle demo``
find the examples here by name (:mod:`modelcycle.cli.examples`); no module of modelcycle imports
this package (an import-linter contract in pyproject.toml keeps it so).
"""
