"""The web dashboard and its HTTP API, over the ``status`` model (issue 16's foundation).

- ``app``: ``create_app(state_dir, settings, ...)``, the Starlette app: pages, API, events.
- ``views``: the data behind them apart from HTTP (history pages, presets, health,
  metrics, retry, upload).
- ``security``: token, login cookie, CSRF, host check and headers, as one middleware.
- ``openapi``: the API's description.
- ``server``: where it binds, which token it needs, uvicorn on a thread.
- ``templates/`` and ``static/``: Jinja2 pages and the one plain-JS file they load.

Imported only by ``autotranscode web`` and ``run --web``: Starlette and uvicorn cost
every other command nothing.
"""
