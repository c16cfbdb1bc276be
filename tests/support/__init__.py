"""Code the tests and the benchmarks run from a clone share; not tests, and not in bnsearch.

``standin``: an engine that sleeps instead of training, registered through
``bnsearch.engines.register_engine``; ``cluster``: PostgreSQL with a connection limit,
PgBouncer, an MLflow server and a fleet of stand-in workers; ``worker_bench``: the workers
benchmark on those parts (``python -m tests.support.worker_bench``).
"""
