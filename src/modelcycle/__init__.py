"""modelcycle keeps a machine-learning model good over time."""
__version__ = "0.1.0"
