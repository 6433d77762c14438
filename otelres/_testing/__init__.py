"""Implementation of :mod:`otelres.testing`; import from there."""
