"""The web app and REST API: `digitrec serve` (FastAPI + one static page)."""

from digitrec.serve.app import create_app, run_server
from digitrec.serve.settings import Settings

__all__ = ["Settings", "create_app", "run_server"]
