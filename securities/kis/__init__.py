"""Korea Investment & Securities (KIS) Open API support."""

__all__: list[str] = []
