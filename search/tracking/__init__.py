"""Tracking a search in MLflow, from the driver only.

``_ledger`` is the driver's book of trials (one ``TrialRecord`` each) that every callback reads;
``_callback`` turns Tune's trial events into MLflow writes, keeping one ``TrialRun`` per trial;
``_search_run`` and ``_trial_records`` say what a search run and a trial run record; ``_store``
holds the writes as typed records, ``_writer`` applies them in order on one thread (retried,
spooled when the store is unreachable) and ``_replay`` delivers a spool later. Imports no other
room of ``search``.
"""
