"""The dashboard, ``streamdrift ui``: an ASGI app (:mod:`streamdrift.ui.app`) over the views of :mod:`streamdrift.ui.data`,
its templates (``ui/templates``) and static files (``ui/static``). Reads the stores through
``connectors``; serves Plotly.js from the installed ``plotly`` package."""
