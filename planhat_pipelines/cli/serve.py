"""``planhat-pipelines serve``: the read-only web app over the config's store (see ``planhat_pipelines/web/``)."""

from __future__ import annotations

import argparse

from planhat_pipelines.config import load_config


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from planhat_pipelines.web.access import token_for_bind
    from planhat_pipelines.web.app import create_app

    # Refuse a non-loopback bind without a token before anything starts listening.
    token = token_for_bind(args.host)
    config = load_config(args.config)
    app = create_app(config, token=token)
    print(f"web app: http://{args.host}:{args.port}  (store {config.store.describe()}; read-only)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``serve`` to the command line."""
    serve = sub.add_parser(
        "serve",
        help="the web app: portfolio, companies and profiles, Data Explorer, OKRs, syncs (read-only over the store)",
    )
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default 127.0.0.1, this machine only; any other address needs "
        "PLANHAT_PIPELINES_WEB_TOKEN, which every request must then carry)",
    )
    serve.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    serve.add_argument("--log-level", default="warning", help="uvicorn's log level (default warning)")
    serve.set_defaults(handler=_serve)
