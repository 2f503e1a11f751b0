"""Securities brokers (KIS, Kiwoom): adapters, clients, data files and synchronisation.

* :mod:`securities.kis` — ``KisAdapter`` (and the KIS stock master files).
* :mod:`securities.kiwoom` — ``KiwoomAdapter``.

Both implement ``brokers.SecuritiesAdapter``; the registry in ``web_server.services.brokers``
imports them lazily, so importing this package does no work.
"""

__all__ = ["kis", "kiwoom"]
