"""`fleetgen run`: the service behind waitress, until SIGINT/SIGTERM."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Sequence

from waitress.server import create_server

from app.api import create_app
from app.core.config import Config, format_duration
from app.core.dirlock import DataDirLock
from app.core.errors import ListenError
from app.medallion.child import PipelineChild
from app.service.logs import StoreHandler, configure_logging
from app.service.service import Service

log = logging.getLogger(__name__)


def run_service(config: Config, mode_source: str, pipeline_arguments: Sequence[str] | None = None) -> int:
    """`fleetgen run`: service + API + dashboard until SIGINT/SIGTERM; exit 0 on a clean stop. With
    ``pipeline_arguments``, `fleetgen pipeline` runs beside it as a child process (``--with-pipeline``)."""
    lock = DataDirLock(config.output.local_dir, "run", url=config.output.url).acquire()  # held until this process ends
    configure_logging()
    service = Service(config, mode_source, freeze_heap=True)
    store_handler = StoreHandler(service.store)
    logging.getLogger().addHandler(store_handler)
    app = create_app(config, service)
    try:
        server = create_server(app, host=config.api.host, port=config.api.port, threads=16,
                               channel_timeout=30, ident="fleetgen")
    except OSError as exc:
        raise ListenError(config.api.host, config.api.port, exc.strerror or str(exc)) from None
    stop = threading.Event()

    def on_signal(signum, _frame) -> None:
        log.info("signal received", extra={"fields": {"signal": signal.Signals(signum).name}})
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    service.start()
    child = PipelineChild(pipeline_arguments) if pipeline_arguments is not None else None
    if child is not None:
        child.start()
    http = threading.Thread(target=server.run, name="fleetgen-http", daemon=True)
    http.start()
    log.info("dashboard ready", extra={"fields": {
        "url": f"http://{config.api.host}:{server.effective_port}/", "mode": config.generation_mode,
        "company_interval": format_duration(config.active_company_interval),
        "driver_interval": format_duration(config.active_driver_interval)}})
    stop.wait()
    if child is not None:
        child.stop()
    service.stop(timeout=1.5)
    server.close()
    store_handler.close()
    logging.getLogger().removeHandler(store_handler)
    service.store.close()
    lock.release()
    return 0
