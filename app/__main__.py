"""python -m app            serve the API with uvicorn (configuration: see app/config.py)
python -m app token ...  issue a bearer token for a user (see app/tokens.py)"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "token":
        from app.tokens import cli

        return cli(argv[1:])
    if argv:
        print(__doc__)
        return 0 if argv[0] in ("-h", "--help") else 2
    from app.config import ConfigError, Settings

    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"avatar-creator: {exc}", file=sys.stderr)
        return 2
    import uvicorn

    from app import logs
    from app.main import create_app

    logs.configure(settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=10,
        proxy_headers=True,
        forwarded_allow_ips="127.0.0.1",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
