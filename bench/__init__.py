"""scimd benchmarks: ``make bench`` (``python -m bench``)."""
