"""``python -m iots6_platform.config_server``: serve the app under gunicorn (2 workers, graceful SIGTERM).

``--openapi`` prints the OpenAPI document instead (how ``docs/openapi.json`` is regenerated).
Configuration errors print one line and exit 2.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import tempfile


def _print_openapi() -> None:
    from iots6_platform.config_server import openapi

    sys.stdout.write(json.dumps(openapi.build(), indent=2, sort_keys=True) + "\n")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["--openapi"]:
        _print_openapi()
        return
    if argv:
        sys.stderr.write(
            "usage: python -m iots6_platform.config_server [--openapi]  (configured by CONFIG_SERVER_* env)\n"
        )
        sys.exit(2)

    # Workers count into files here so /metrics sums them all; set before prometheus_client is imported.
    metrics_dir = None
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        metrics_dir = tempfile.mkdtemp(prefix="iots6-config-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir

    from gunicorn.app.base import BaseApplication

    from iots6_platform.config_server import close_app, create_app
    from iots6_platform.config_server.config import ConfigError, load

    try:
        settings = load()  # fail here, once, with one line, instead of in every worker
    except ConfigError as exc:
        sys.stderr.write(f"error: {exc}\n")
        sys.exit(2)
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    def worker_exit(_server, worker) -> None:
        app = getattr(worker, "wsgi", None)
        if app is not None and hasattr(app, "extensions"):
            close_app(app)

    def child_exit(_server, worker) -> None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)

    class ConfigServer(BaseApplication):
        def load_config(self) -> None:
            options = {
                "bind": f"{settings.bind}:{settings.port}",
                "workers": settings.workers,
                "worker_class": "sync",
                "graceful_timeout": 10,
                "timeout": 30,
                "accesslog": "-",
                "loglevel": settings.log_level.lower(),
                "proc_name": "iots6-config-server",
                "worker_exit": worker_exit,
                "child_exit": child_exit,
            }
            if "control_socket_disable" in self.cfg.settings:  # gunicorn >= 25.1
                # No control socket (`gunicornc`): nothing here uses it (the process is run and stopped by its pid
                # and signals), it would land outside the service's own directories ($XDG_RUNTIME_DIR or
                # ~/.gunicorn/gunicorn.ctl, one path shared by every server of the user, unwritable under systemd's
                # ProtectHome), and it is one more way to reconfigure a running server.
                options["control_socket_disable"] = True
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self):
            return create_app()  # in each worker, after the fork: its own pool and MQTT client

    try:
        ConfigServer().run()
    finally:
        if metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
