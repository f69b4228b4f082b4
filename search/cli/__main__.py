"""``python -m tunefleet.search.cli``: the ``tunefleet`` command (jobs on a cluster start it this way)."""

from . import main

main()
