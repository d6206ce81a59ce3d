"""The alarm pipeline, stage by stage as an alert flows.

``ingest`` (validate Salt events and Alertmanager webhooks) -> ``evaluate``
(rules: threshold and ``for``) -> ``dispatch`` (route and group) -> ``inhibit``
and ``silence`` (mute) -> ``nflog`` (what was already sent) -> the notify
outbox (``saltops.notify``).  ``pipeline`` ties them together in memory;
``persist`` writes the state behind, in batched transactions, from the
``writer`` thread; ``bus`` reads the master event bus; ``service`` runs it all.
"""
