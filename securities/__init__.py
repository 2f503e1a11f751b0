"""Securities brokers (KIS, Kiwoom): clients, data files and synchronisation."""

__all__: list[str] = []
