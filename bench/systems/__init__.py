"""The systems the benchmark compares, each behind one small interface (:class:`System`)."""
