"""gunicorn settings for attach-fhir, the production server:

    gunicorn 'smart_app.wsgi:create()' -c deploy/gunicorn.conf.py

Every value can be changed through the environment named beside it; docs/deployment.md says why
each is what it is.
"""

import os

# Behind the reverse proxy, on the host's private interface or a container network.
bind = os.environ.get("ATTACH_BIND", "127.0.0.1:8000")
# Processes x threads: the app waits on the FHIR server most of the time, so threads pay.
workers = int(os.environ.get("ATTACH_WORKERS", "2"))
worker_class = "gthread"
threads = int(os.environ.get("ATTACH_THREADS", "8"))
# A FHIR server may take its time; a request still running after this is killed (and logged).
timeout = int(os.environ.get("ATTACH_WORKER_TIMEOUT", "60"))
graceful_timeout = 30
keepalive = 5
# Recycle workers now and then (memory), not all at once.
max_requests = 2000
max_requests_jitter = 200
# Request line and headers: launch URLs are short; refuse the absurd before the app sees it.
limit_request_line = 8190
limit_request_fields = 100
# gunicorn's access log would print query strings (launch codes, state): the app writes its own
# path-only access log instead (smart_app.cli.path_only_access_log).
accesslog = None
errorlog = "-"
loglevel = "info"
# X-Forwarded-* are believed only from the proxy (its address; "*" only on a private network).
forwarded_allow_ips = os.environ.get("ATTACH_FORWARDED_ALLOW_IPS", "127.0.0.1")


def child_exit(server, worker):  # type: ignore[no-untyped-def]
    """A worker ended: drop its live gauges from the multiprocess metrics (docs/deployment.md)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


# Nothing imported before fork: each worker opens its own connections and outbox worker.
preload_app = False
