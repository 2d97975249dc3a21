"""planhat_pipelines: keep a Planhat-style model store in sync with a data warehouse.

The sync core (``models``, ``store``, ``warehouses``, ``sync``, ``okrs``) never imports Dagster;
``planhat_pipelines.defs`` and ``planhat_pipelines.definitions`` are the Dagster glue.
"""

__version__ = "0.1.0"
