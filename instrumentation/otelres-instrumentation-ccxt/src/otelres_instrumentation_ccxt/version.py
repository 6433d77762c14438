"""The version of otelres-instrumentation-ccxt."""

__version__ = "0.1.0"
