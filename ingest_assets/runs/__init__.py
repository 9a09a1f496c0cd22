"""`ingest run`: a source's runs of the ingest job, planned once (plan.py), then forked by the
command itself (local.py, the fast path on one machine) or submitted to a Dagster deployment
(deployment.py), and reported as one summary (report.py)."""
