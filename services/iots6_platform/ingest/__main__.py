"""Entry point: ``iots6-ingest`` / ``python -m iots6_platform.ingest``, configured by INGEST_* env vars."""

from __future__ import annotations

import logging
import sys

from iots6_platform.ingest.config import ConfigError, IngestConfig


def main() -> int:
    try:
        config = IngestConfig.from_env()
    except ConfigError as exc:
        sys.stderr.write(f"iots6-ingest: error: {exc}\n")
        return 2
    logging.basicConfig(
        level=config.log_level,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    from iots6_platform.ingest.http import serve
    from iots6_platform.ingest.service import Ingestor

    ingestor = Ingestor(config)
    ingestor.install_signal_handlers()
    server = None
    if config.http_port:
        try:
            server = serve(config.http_bind, config.http_port, ingestor.health)
        except OSError as exc:
            sys.stderr.write(
                f"iots6-ingest: error: cannot listen on {config.http_bind}:{config.http_port} ({exc.strerror}); "
                "set INGEST_HTTP_PORT to a free port.\n"
            )
            return 1
    logging.getLogger("iots6.ingest").info("starting %r", config)
    try:
        return ingestor.run()
    finally:
        if server is not None:
            server.shutdown()


if __name__ == "__main__":
    sys.exit(main())
