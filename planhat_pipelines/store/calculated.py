"""The store's tables of computed customer numbers: calculated-metric series and health scores.

- ``calculated_metric_values``: one row per metric, record and day (the daily series), next to the synced
  ``custom_metrics``; the latest day's value is also kept on the record as ``custom.<metric>``.
- ``health_scores``: one row per company and day (the score's history); the latest is the company's ``h``.
- ``health_score_inputs``: per company, day and input, the input's number, its 0-10 score and weight, so a
  page can show why a score is what it is.
"""

from __future__ import annotations

CALCULATED_METRIC_VALUES_DDL = """CREATE TABLE IF NOT EXISTS calculated_metric_values (
        metric VARCHAR NOT NULL, model VARCHAR NOT NULL, "recordId" VARCHAR NOT NULL, "day" DATE NOT NULL,
        "value" DOUBLE, computed_at TIMESTAMP NOT NULL)"""

HEALTH_SCORES_DDL = """CREATE TABLE IF NOT EXISTS health_scores (
        "day" DATE NOT NULL, "companyId" VARCHAR NOT NULL, score DOUBLE, computed_at TIMESTAMP NOT NULL)"""

HEALTH_SCORE_INPUTS_DDL = """CREATE TABLE IF NOT EXISTS health_score_inputs (
        "day" DATE NOT NULL, "companyId" VARCHAR NOT NULL, input VARCHAR NOT NULL, "value" DOUBLE, score DOUBLE,
        weight DOUBLE NOT NULL, computed_at TIMESTAMP NOT NULL)"""

CALCULATED_TABLES = (CALCULATED_METRIC_VALUES_DDL, HEALTH_SCORES_DDL, HEALTH_SCORE_INPUTS_DDL)
