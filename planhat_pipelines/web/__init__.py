"""The web app: Profiles, Data Explorer, OKRs and sync health, read-only over the model store.

``planhat-pipelines serve`` starts it (:func:`planhat_pipelines.web.app.create_app` builds it). Pages are
server-rendered: Jinja2 templates, inline SVG charts, htmx for filtering without full reloads, and every script and
style served by the app itself. Each page has a JSON twin under ``/api/``. The app only reads: it opens the store
read-only, so it never writes the store and never holds a lock a sync waits for.
"""
