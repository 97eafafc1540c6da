"""Set up and start the real Argilla server with the in-memory search engine: test infrastructure, not product.

Run by the review tests with the Argilla server's own virtualenv (``make argilla-server`` creates
``.venv-argilla``)::

    .venv-argilla/bin/python tests/argilla_launch.py --host 127.0.0.1 --port N

In one process (the server's imports take most of the start-up time on a small machine) it runs the
server's own CLI commands ``database migrate`` and ``database users create ... --workspace default`` for
each user in ``JUDGEFORGE_ARGILLA_USERS`` (a JSON list of ``{username, role, password, api_key}``),
registers the ``memory`` search engine (:mod:`argilla_memory_search`, beside this file) in the server's
registry, then serves ``argilla_server._app.create_server_app()`` with uvicorn — the app
``argilla_server start`` serves. Database, redis and the engine choice come from the ``ARGILLA_*``
environment variables the test fixture sets (``ARGILLA_SEARCH_ENGINE=memory``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description="Start a test Argilla server with the in-memory search engine.")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (loopback only in tests)")
    parser.add_argument("--port", type=int, required=True, help="port to listen on")
    args = parser.parse_args()

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import argilla_memory_search  # noqa: F401  (registers the "memory" search engine)
    import uvicorn
    from argilla_server._app import create_server_app
    from argilla_server.cli import app
    from typer.main import get_command

    cli = get_command(app)
    cli.main(["database", "migrate"], prog_name="argilla_server", standalone_mode=False)
    for user in json.loads(os.environ.get("JUDGEFORGE_ARGILLA_USERS", "[]")):
        cli.main(
            [
                "database",
                "users",
                "create",
                "--first-name",
                user["username"],
                "--username",
                user["username"],
                "--password",
                user["password"],
                "--role",
                user["role"],
                "--api-key",
                user["api_key"],
                "--workspace",
                "default",
            ],
            prog_name="argilla_server",
            standalone_mode=False,
        )
    uvicorn.run(create_server_app(), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
