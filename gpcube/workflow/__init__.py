"""The job: its config, the per-observation recipe, reduce, mosaic, significance, and the run.

Above :mod:`gpcube.storage` (which it writes and reads through) and the makers and estimators (which
it calls); below the command line.
"""
