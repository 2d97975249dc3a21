"""Placeholder until this domain lands."""

from __future__ import annotations

import dagster as dg

from planhat_pipelines.config import Config


def build_usage_defs(config: Config) -> dg.Definitions:
    return dg.Definitions()
