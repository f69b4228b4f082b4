"""Resuming a search after its driver was lost: ``_resume`` finds the search run, its spec and
Ray Tune's saved state and hands the unfinished trials back to tracking; ``_liveness`` says from
the driver's tags whether a ``RUNNING`` search's driver is gone. Imports ``tracking`` only.
"""
