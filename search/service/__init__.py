"""Searches as a service: a local Ray head and MLflow server (``_service``: ``up`` / ``down``),
a cluster's token, reachability and node shapes (``_cluster``), Ray Jobs (``_jobs``: submit,
progress, logs, stop) and a submission checked here first (``_submit``). Imports ``resume``
(is a job's driver alive?), never ``run``: the job's own driver runs on the cluster.
"""
