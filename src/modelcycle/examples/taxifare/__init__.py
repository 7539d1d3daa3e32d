"""The taxifare example: simulated New York yellow-cab rides whose fares drift, the seeds' exercise.

- ``simulator``: the rides, written into a DuckDB warehouse that the workspace reads as a plain
  ``duckdb`` source;
- ``features``: the feature builder, ``features.builder:
  modelcycle.examples.taxifare.features:taxi_features``;
- ``scenario``: the simulator's noise floor and ground truth, ``reference.factory:
  modelcycle.examples.taxifare.scenario:TaxiReference``;
- ``workspace``: ``create(root, ...)``, the workspace of ``modelcycle init --example taxifare``
  and ``modelcycle demo``, from ``modelcycle.template.yaml``.

This ``__init__`` imports nothing: a logged model imports ``features`` and nothing more.
"""

#: What the example is, in one line (the help of `init --example` lists it).
ABOUT = "simulated New York cab rides 2009-2015 in a DuckDB warehouse, the seeds' 2.5 MAE gate"
#: The first cycle's window: it trains the first champion on the year before (2014).
FIRST_WINDOW = "2014-12"
#: The months `modelcycle demo` replays after the first champion (first, last, included).
DEMO_MONTHS = ("2015-01", "2015-06")
#: What `modelcycle demo` shows, in one line.
DEMO_STORY = "a fare-rule change in March and a month of broken data in May"
