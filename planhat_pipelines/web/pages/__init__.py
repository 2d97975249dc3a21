"""The app's pages: each module reads its data (a function of a read-only store view and the config, returning
plain dataclasses) and declares ``ROUTES``: the page and its JSON twin under ``/api/``, both answered by
:func:`planhat_pipelines.web.render.respond` from the same data.

The pages' SQL lives beside them, as the behaviours' and metrics' SQL lives beside their rules: it only reads,
and every value a visitor types reaches the store as a bound parameter (names are checked against the model
catalog and quoted).
"""
