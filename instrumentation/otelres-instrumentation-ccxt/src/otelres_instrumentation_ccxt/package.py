"""The client library this instrumentor instruments (read by ``opentelemetry-instrument``)."""

_instruments = ("ccxt >= 4.3",)
