"""Reads and writes of the pipeline's tables, one module per concern. All SQL is parameterised."""
