"""WSGI entry point for any WSGI server: `app` is built from the M2M_* environment."""

from m2mcloud.cse.app import create_app

app = create_app()
