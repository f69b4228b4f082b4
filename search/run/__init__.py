"""Running one search: the spec compiled into a Ray Tune ``Tuner`` and driven to its end.

``_experiment`` builds the Tuner (searcher, scheduler, resources, storage); ``preflight``
(``search/_preflight.py``, shared with the API and the service client) checks a spec against data
and models before anything starts; ``_ray`` starts or joins Ray;
``_driver`` opens the search run, runs the experiment with the tracking, console and watchdog
callbacks, and closes every run however the search ends; ``_progress`` prints it; ``_watchdog``
stops silent trials. Imports ``tracking``, ``resume`` and ``service``; none of them imports it.
"""
