"""The usage sync's validation SQL, run by DuckDB over one staged batch (``__usage_batch``).

:func:`validating_view` gives each row its key as a number (``__num``), its record, and the reason, offending
value and permanence of a reject (NULL reason: the row is valid). Key checks come first and are permanent
(no retry can fix a key); row checks (duplicate key, missing or unknown reference, bad date, non-finite
numbers) are not. :func:`new_rows_sql` and :func:`rejects_sql` read that view's rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from planhat_pipelines.config import UsageSection
from planhat_pipelines.sql_quoting import quote_identifier as q
from planhat_pipelines.sql_quoting import quote_literal as lit
from planhat_pipelines.store import ModelStore
from planhat_pipelines.store.schema import USAGE_COLUMNS, USAGE_TABLES
from planhat_pipelines.sync.ranges import KEY_DIGITS
from planhat_pipelines.warehouses.base import FLOAT_KEY_LIMIT, KEY_LIMIT, ColumnKind


def _batch_column(names: Sequence[str], column: str) -> str:
    """The batch's name of source column ``column`` (warehouses may change its case)."""
    return {n.lower(): n for n in names}.get(column.lower(), column)


def _staging_select(section: UsageSection, names: Sequence[str]) -> str:
    """Project the raw batch columns onto the usage roles (``__key``, ``record``, ``date`` ...), plus the
    references :func:`with_references` resolved."""
    cols = {"__key": section.key, **section.fields}
    parts = [f"b.{q(_batch_column(names, column))} AS {q(alias)}" for alias, column in cols.items()]
    return ", ".join([*parts, f"b.{REF_ID} AS {REF_ID}", f"b.{REF_COMPANY} AS {REF_COMPANY}"])


def _key_number_sql(kind: ColumnKind) -> str:
    """The staged key (``s.__key``) as HUGEINT when it is a valid key (NULL when it cannot be one)."""
    if kind is ColumnKind.TEXT:
        return "TRY_CAST(trim(CAST(s.__key AS VARCHAR)) AS HUGEINT)"
    if kind is ColumnKind.FLOAT:
        return f"CASE WHEN isfinite(s.__key) AND abs(s.__key) < {FLOAT_KEY_LIMIT} THEN CAST(s.__key AS HUGEINT) END"
    return f"CASE WHEN abs(s.__key) < {KEY_LIMIT} THEN TRY_CAST(s.__key AS HUGEINT) END"


def _key_checks(kind: ColumnKind) -> list[tuple[str, str]]:
    """(condition, reason) for keys that are not valid; every one is a permanent reject."""
    shown = "CAST(s.__key AS VARCHAR)"
    checks = [("s.__key IS NULL", "'null key'")]
    if kind is ColumnKind.TEXT:
        checks.append(
            (
                f"NOT regexp_full_match(trim({shown}), '[0-9]{{1,{KEY_DIGITS}}}')",
                f"'key ''' || {shown} || ''' is not a whole number of 1 to {KEY_DIGITS} digits'",
            )
        )
        return checks
    if kind is ColumnKind.FLOAT:
        checks.append(("NOT isfinite(s.__key)", f"'key ' || {shown} || ' is not a finite number'"))
    checks += [
        ("s.__key < 0", f"'key ' || {shown} || ' is negative'"),
        ("s.__key <> floor(s.__key)", f"'key ' || {shown} || ' is not a whole number'"),
    ]
    if kind is ColumnKind.FLOAT:
        checks.append(
            (
                f"s.__key >= {FLOAT_KEY_LIMIT}",
                f"'key ' || {shown} || ' is a float above 2**53, which cannot hold every whole number (cast the key "
                "column to an integer type)'",
            )
        )
    else:
        checks.append(
            # An exact literal: 10**32 - 1 as a double would already be 1e32.
            (f"abs(s.__key) >= {KEY_LIMIT}", f"'key ' || {shown} || ' is longer than {KEY_DIGITS} digits'")
        )
    return checks


def _finite(expr: str) -> str:
    return f"(TRY_CAST({expr} AS DOUBLE) IS NULL OR NOT isfinite(TRY_CAST({expr} AS DOUBLE)))"


def _row_checks(section: UsageSection, duplicates: bool) -> list[tuple[str, str, str]]:
    """(condition, reason, offending value) for rows whose key is valid but whose content is not.

    ``duplicates``: the source has keys that occur twice in the read window (``__usage_dups`` holds them).
    """
    model = section.model
    match = section.record_match
    fields = section.fields

    def text(role: str) -> str:
        return f"CAST(s.{role} AS VARCHAR)"

    checks = [
        ("d.dup_key IS NOT NULL", "'key ' || CAST(__num AS VARCHAR) || ' occurs more than once in the source'", "NULL"),
    ][: 1 if duplicates else 0]
    checks += [
        ("s.record IS NULL", lit(f"missing {model.name} reference ({fields['record']})"), "NULL"),
        ("s.date IS NULL", lit(f"missing date ({fields['date']})"), "NULL"),
        (
            "TRY_CAST(s.date AS TIMESTAMP) IS NULL",
            f"'date ' || {text('date')} || " + lit(f" is not a timestamp ({fields['date']})"),
            text("date"),
        ),
    ]
    if section.kind == "metrics":
        checks += [
            ("s.dimension IS NULL", lit(f"missing dimension ({fields['dimension']})"), "NULL"),
            (
                _finite("s.value"),
                f"'value ' || COALESCE({text('value')}, 'NULL') || "
                + lit(f" is not a finite number ({fields['value']})"),
                text("value"),
            ),
        ]
    else:
        checks.append(("s.action IS NULL", lit(f"missing action ({fields['action']})"), "NULL"))
        if "info" in section.fields:
            checks.append(
                (
                    "s.info IS NOT NULL AND NOT json_valid(CAST(s.info AS VARCHAR))",
                    lit(f"info is not JSON ({fields['info']})"),
                    f"left({text('info')}, 200)",
                )
            )
        for role in ("count", "weight"):
            if role in section.fields:
                checks.append(
                    (
                        f"s.{role} IS NOT NULL AND {_finite('s.' + role)}",
                        f"'{role} ' || {text(role)} || " + lit(f" is not a finite number ({fields[role]})"),
                        text(role),
                    )
                )
    if section.unknown_reference == "reject":
        checks.append(
            (
                f"s.{REF_ID} IS NULL",
                f"'unknown {model.slug} ' || {text('record')} || ' (matched by {match})'",
                text("record"),
            )
        )
    return checks


def validating_view(section: UsageSection, kind: ColumnKind, names: Sequence[str], *, duplicates: bool = True) -> str:
    """SQL of the view over ``__usage_batch`` giving each row's key, record, reason, value and permanence.

    The batch carries its resolved references (:func:`with_references`). ``duplicates=False`` when the source has
    no duplicate keys in the read window: the view then needs no join at all.
    """
    key_checks = _key_checks(kind)
    row_checks = _row_checks(section, duplicates)
    reason = (
        "CASE "
        + " ".join(f"WHEN {c} THEN {r}" for c, r in key_checks)
        + " "
        + " ".join(f"WHEN {c} THEN {r}" for c, r, _ in row_checks)
        + " END"
    )
    value = (
        "CASE "
        + " ".join(f"WHEN {c} THEN CAST(s.__key AS VARCHAR)" for c, _ in key_checks)
        + " "
        + " ".join(f"WHEN {c} THEN {v}" for c, _, v in row_checks)
        + " END"
    )
    permanent = "CASE " + " ".join(f"WHEN {c} THEN TRUE" for c, _ in key_checks) + " ELSE FALSE END"
    dups = " LEFT JOIN __usage_dups d ON d.dup_key = s.__num" if duplicates else ""
    return (
        "CREATE OR REPLACE TEMP VIEW __usage_rows AS "
        f"WITH s0 AS (SELECT {_staging_select(section, names)} FROM __usage_batch b), "
        f"s AS (SELECT s.*, CASE {' '.join(f'WHEN {c} THEN NULL' for c, _ in key_checks)} "
        f"ELSE {_key_number_sql(kind)} END AS __num FROM s0 s) "
        f"SELECT s.*, {reason} AS __reason, {value} AS __value, {permanent} AS __permanent FROM s{dups}"
    )


#: The columns :func:`with_references` adds to a batch: the matched record's id and its company's.
REF_ID, REF_COMPANY = "__record_id", "__company_id"


def with_references(section: UsageSection, con: duckdb.DuckDBPyConnection, batch: pa.RecordBatch) -> pa.Table:
    """``batch`` with the id of the record each row references and its company's (NULL when none matches).

    Matched once per distinct reference (a batch of 200,000 rows names a few thousand end users) against
    ``__usage_refs`` (:func:`prepare_refs`), then spread back over the rows by dictionary index: a join of every
    row on ``lower(trim(email))`` cost 2-4x more.
    """
    column = batch.column(batch.schema.names.index(_batch_column(batch.schema.names, section.fields["record"])))
    encoded = pc.dictionary_encode(column)
    values = pa.table({"__i": pa.array(range(len(encoded.dictionary)), pa.int64()), "__v": encoded.dictionary})
    con.register("__usage_ref_values", values)
    try:
        found = con.execute(
            "SELECT x.id, x.company_id FROM __usage_ref_values v "
            f"LEFT JOIN __usage_refs x ON x.ref = {_ref_sql(section, 'v.__v')} ORDER BY v.__i"
        ).to_arrow_table()
    finally:
        con.unregister("__usage_ref_values")
    table = pa.Table.from_batches([batch])
    ids = pc.take(found.column("id"), encoded.indices)
    companies = pc.take(found.column("company_id"), encoded.indices)
    return table.append_column(REF_ID, ids).append_column(REF_COMPANY, companies)


def _ref_sql(section: UsageSection, expr: str) -> str:
    """How a reference is compared: emails lower-cased and trimmed (people type them so), the rest exactly."""
    text = f"CAST({expr} AS VARCHAR)"
    return f"lower(trim({text}))" if section.record_match == "email" else text


def prepare_refs(section: UsageSection, store: ModelStore) -> None:
    """Index the section's records by the matched field once, not per run pass (``__usage_refs``)."""
    model = section.model
    company = "id" if model.slug == "company" else '"companyId"'
    match = q(section.record_match)
    store.con.execute(
        "CREATE OR REPLACE TEMP TABLE __usage_refs AS "
        f"SELECT {_ref_sql(section, match)} AS ref, min(id) AS id, min({company}) AS company_id "
        f"FROM {q(model.slug)} WHERE {match} IS NOT NULL GROUP BY 1"
    )


#: The temp table holding a batch's rows that are valid and not loaded yet: what the batch inserts, and what the
#: daily series (``usage_daily``) aggregates, so both count exactly the same rows.
NEW_ROWS = "__usage_new"


def new_rows_sql(section: UsageSection, *, skip_loaded: bool = True) -> str:
    """CREATE of :data:`NEW_ROWS`: the valid, not yet loaded rows of ``__usage_rows``, as the usage table's columns.

    Parameters: section, model, run id, then (``skip_loaded``) section, the batch's lowest and highest valid key
    (as text). Without ``skip_loaded`` every valid row is taken: only for a batch the caller knows holds no
    stored key (see :meth:`Pass.run <planhat_pipelines.sync.usage.batch.Pass.run>`).
    """
    if section.kind == "activities":
        info = "CAST(info AS JSON)" if "info" in section.fields else "NULL"
        count = "TRY_CAST(count AS DOUBLE)" if "count" in section.fields else "1.0"
        weight = "TRY_CAST(weight AS DOUBLE)" if "weight" in section.fields else "1.0"
        values = [
            "CAST(action AS VARCHAR)",
            "TRY_CAST(date AS TIMESTAMP)",
            f"COALESCE({count}, 1.0)",
            f"COALESCE({weight}, 1.0)",
            info,
        ]
    else:
        values = ["CAST(dimension AS VARCHAR)", "TRY_CAST(value AS DOUBLE)", "TRY_CAST(date AS TIMESTAMP)"]
    table = USAGE_TABLES[section.kind]
    exprs = ["?", "__num", "?", "__record_id", "__company_id", "CAST(record AS VARCHAR)", *values, "?"]
    # Cast to the table's own types: the temp table then holds the rows exactly as the usage table will.
    select = ", ".join(
        f"CAST({expr} AS {type_}) AS {q(name)}" for expr, (name, type_) in zip(exprs, USAGE_COLUMNS[table], strict=True)
    )
    create = f"CREATE OR REPLACE TEMP TABLE {NEW_ROWS} AS SELECT {select} FROM __usage_rows"
    if not skip_loaded:
        return f"{create} WHERE __reason IS NULL"
    # Keys already loaded (a retry, a re-run, the lookback) are skipped by an anti-join with the section's
    # stored keys between the batch's lowest and highest key, so DuckLake reads only the files whose key
    # statistics overlap the batch. A LEFT JOIN, not NOT EXISTS: DuckLake 1.5.5 fails on that subquery.
    # Accepted keys are unique within a batch (keys that occur twice in the source are rejected), and one
    # section never runs twice at once (its own pool), so this is exact.
    return (
        f"{create} u "
        f'LEFT JOIN (SELECT "key" FROM {table} WHERE section = ? AND "key" BETWEEN CAST(? AS HUGEINT) '
        'AND CAST(? AS HUGEINT)) e ON e."key" = u.__num WHERE __reason IS NULL AND e."key" IS NULL'
    )


def insert_new_rows_sql(section: UsageSection) -> str:
    """INSERT of :data:`NEW_ROWS` into the section's usage table (it returns how many rows it inserted)."""
    names = ", ".join(q(name) for name, _ in USAGE_COLUMNS[USAGE_TABLES[section.kind]])
    return f"INSERT INTO {USAGE_TABLES[section.kind]} ({names}) SELECT {names} FROM {NEW_ROWS}"


def key_text_sql() -> str:
    """A checked row's key as reject records hold it: the valid key's digits, else the raw text, or '(null)'."""
    return "COALESCE(CAST(__num AS VARCHAR), CASE WHEN __key IS NULL THEN '(null)' ELSE CAST(__key AS VARCHAR) END)"


def rejects_sql(section: UsageSection) -> str:
    """The rejected rows of ``__usage_checked`` as reject records, one per source row.

    The fingerprint is a hash of the row's mapped values plus its occurrence among identical rows, so both
    copies of a duplicate key, or several null-key rows, are records of their own.
    """
    values = ", ".join(f"COALESCE(CAST({q(c)} AS VARCHAR), chr(0))" for c in ["__key", *dict.fromkeys(section.fields)])
    fingerprint = f"md5(concat_ws(chr(31), {values}))"
    return (
        f'SELECT "key", fp || \'#\' || CAST(row_number() OVER (PARTITION BY "key", fp) AS VARCHAR) AS fingerprint, '
        'reason, "value", permanent FROM (SELECT '
        f'{key_text_sql()} AS "key", {fingerprint} AS fp, __reason AS reason, __value AS "value", '
        "__permanent AS permanent FROM __usage_checked WHERE __reason IS NOT NULL)"
    )
