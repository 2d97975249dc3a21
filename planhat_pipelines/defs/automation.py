"""When the customer numbers (behaviours, calculated metrics, health score) run by themselves."""

from __future__ import annotations

import dagster as dg

#: Run when an upstream section lands, as ``eager()`` does, but without its wait for every upstream partition:
#: the usage sensor registers key ranges before it loads them, and a range that failed stays unloaded, so with
#: ``eager()`` one missing range would hold the metrics back for good.
WHEN_UPSTREAM_LANDS = (
    dg.AutomationCondition.eager().without(~dg.AutomationCondition.any_deps_missing()).with_label("eager_allow_missing")
)
