"""gradir: adapt text-embedding models to a collection with synthetic data and graded labels."""

__version__ = "0.1.0"
