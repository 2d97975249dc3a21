"""The field-to-SQL compiler of the CRM receive: one :class:`Plan` per received field.

Pure functions of the section and the warehouse's description of its table: they return SQL text and
touch no connection. The SQL reads the staged source row as ``r``; a relation also joins the store's
``company`` table (and, for an in-batch parent, the temp table ``__crm_keys`` of this run's usable keys).
Receive puts the pieces into one statement (:func:`values_sql`, :func:`field_error_sql`,
:func:`field_value_sql`, :func:`joins_sql`) and builds the store rows with :func:`store_columns_sql`.
"""

from __future__ import annotations

from dataclasses import dataclass

from planhat_pipelines.config import CrmSection, FieldMapping
from planhat_pipelines.errors import SyncError
from planhat_pipelines.models import FieldType
from planhat_pipelines.models.catalog import EMAIL_PATTERN, MONEY_INTEGER_DIGITS, email_sql, trim_sql
from planhat_pipelines.sql_quoting import quote_identifier as q
from planhat_pipelines.sql_quoting import quote_literal as lit
from planhat_pipelines.sync.crm.sql import PENDING_PARENT, json_path
from planhat_pipelines.warehouses.base import ColumnKind, TableInfo

_TYPE_WORDS = {
    FieldType.NUMBER: "a number",
    FieldType.INTEGER: "an integer",
    FieldType.BOOLEAN: "a boolean (true/false)",
    FieldType.DATE: "a date",
    FieldType.DATETIME: "a date-time",
    FieldType.JSON: "valid JSON",
    FieldType.MONEY: "a number",
}


def is_relation(section: CrmSection, fm: FieldMapping) -> bool:
    """Whether ``fm`` holds a company reference (a company-owned model's companyId, Company parentId)."""
    model = section.model
    if fm.planhat == "companyId" and model.company_field == "companyId":
        return True
    return fm.planhat == "parentId" and model.slug == "company"


@dataclass
class Plan:
    """SQL pieces for one received field."""

    fm: FieldMapping
    value: str  # the converted value (standard type, company id, or JSON for custom)
    error: str | None = None  # SQL text of the reason, NULL when the row is fine
    join: str = ""
    pending: str | None = None  # company parentId resolved later in this run (placeholder value)
    shown: str = "NULL"  # SQL text of the offending value, recorded with the reject


@dataclass(frozen=True)
class _Source:
    """SQL for one mapped warehouse column, read as JSON, as text and as the value a cast starts from."""

    raw: str
    js: str
    text: str
    typed: str
    not_json: str | None  # true when a column that must hold JSON text does not

    @property
    def shown(self) -> str:
        return f"left({self.text}, 100)"


def _source(fm: FieldMapping, kind: ColumnKind) -> _Source:
    """How the staged row's column ``fm.warehouse`` (of ``kind``) reads, picking ``fm.path`` when set."""
    raw = f"r.{q(fm.warehouse)}"
    js_raw = f"TRY_CAST({raw} AS JSON)"

    def json_text(js: str) -> str:
        # A JSON string becomes its text; an object or array stays readable JSON text, never a repr.
        return f"(CASE WHEN json_type({js}) = 'VARCHAR' THEN {js} ->> '$' ELSE CAST({js} AS VARCHAR) END)"

    if fm.path:
        picked = f"json_extract({js_raw}, {lit(json_path(fm.path))})"
        js = f"(CASE WHEN json_type({picked}) = 'NULL' THEN NULL ELSE {picked} END)"
        return _Source(raw, js, json_text(js), json_text(js), f"{raw} IS NOT NULL AND {js_raw} IS NULL")
    if kind is ColumnKind.JSON:
        js = f"(CASE WHEN json_type({js_raw}) = 'NULL' THEN NULL ELSE {js_raw} END)"
        return _Source(raw, js, json_text(js), json_text(js), None)
    if fm.planhat == "custom" and kind is ColumnKind.TEXT:
        # JSON objects kept in a text column (issue 12): parse the text; a blank one holds nothing.
        parsed = f"TRY_CAST({trim_sql(raw)} AS JSON)"
        js = f"(CASE WHEN json_type({parsed}) = 'NULL' THEN NULL ELSE {parsed} END)"
        return _Source(raw, js, f"CAST({raw} AS VARCHAR)", raw, f"{trim_sql(raw)} IS NOT NULL AND {parsed} IS NULL")
    return _Source(raw, f"to_json({raw})", f"CAST({raw} AS VARCHAR)", raw, None)


def _number_error(where: str, src: _Source, value: str, spec_type: FieldType) -> str:
    """SQL for the reason a numeric value is refused: not a number, NaN, infinite or out of range.

    A DOUBLE holds NaN and infinities and text such as '1e400' casts to one, but none is a value Planhat
    can store or add up (an infinite license MRR made its company's MRR infinite), so each is rejected
    with the field named.
    """
    num = f"TRY_CAST({src.typed} AS DOUBLE)"
    quoted = f"{lit(where + ': ' + chr(39))} || {src.shown} || {lit(chr(39))}"
    if spec_type is FieldType.MONEY:
        limit = f"money holds at most {MONEY_INTEGER_DIGITS} digits before the decimal point"
    else:
        limit = "beyond the range of a DOUBLE"
    spelled_inf = f"regexp_full_match(lower(trim({src.text})), '[+-]?inf(inity)?')"
    return (
        f"WHEN {src.text} IS NULL THEN NULL "
        f"WHEN {num} IS NULL AND {value} IS NULL THEN {quoted} || {lit(' is not ' + _TYPE_WORDS[spec_type])} "
        f"WHEN isnan({num}) THEN {quoted} || ' is NaN (not a number)' "
        f"WHEN isinf({num}) AND {spelled_inf} THEN {quoted} || ' is infinite (only finite numbers are accepted)' "
        f"WHEN {value} IS NULL OR isinf({num}) THEN {quoted} || {lit(' is out of range (' + limit + ')')} "
    )


def _standard_plan(section: CrmSection, fm: FieldMapping, kind: ColumnKind, src: _Source, bad_json: str) -> Plan:
    """A standard field: converted explicitly to the catalog type; a value that does not convert rejects the row."""
    spec = section.model.field(fm.planhat)
    assert spec is not None  # config validated it
    where = f"field {fm.planhat}"
    json_check = f"WHEN {src.not_json} THEN {bad_json} " if src.not_json else ""
    if spec.type is FieldType.TEXT:
        error = f"CASE {json_check}END" if json_check else None
        return Plan(fm, src.text, error, shown=src.shown)
    if spec.type is FieldType.EMAIL:
        value = email_sql(src.text)
        error = (
            f"CASE {json_check}WHEN {value} IS NOT NULL AND NOT regexp_full_match({value}, {lit(EMAIL_PATTERN)}) "
            f"THEN {email_reason(where, trim_sql(src.text))} END"
        )
        return Plan(fm, value, error, shown=src.shown)
    if spec.type is FieldType.JSON:
        value = src.js if (kind is ColumnKind.JSON or fm.path) else f"TRY_CAST({src.raw} AS JSON)"
    else:
        value = f"TRY_CAST({src.typed} AS {spec.type.duckdb_type})"
    if spec.type in (FieldType.NUMBER, FieldType.MONEY):
        checks = _number_error(where, src, value, spec.type)
    else:
        checks = (
            f"WHEN {src.text} IS NOT NULL AND {value} IS NULL THEN {lit(where + ': ' + chr(39))} || {src.shown} || "
            f"{lit(chr(39) + ' is not ' + _TYPE_WORDS[spec.type])} "
        )
    return Plan(fm, value, f"CASE {json_check}{checks}END", shown=src.shown)


def email_reason(where: str, shown: str) -> str:
    """SQL for the reason an email is refused, naming the field and the (trimmed) value."""
    rule = (
        " is not an email address (expected one '@' with text before it, a domain with a dot after it, and no spaces)"
    )
    return f"{lit(where + ': ' + chr(39))} || {shown} || {lit(chr(39) + rule)}"


def receive_plans(section: CrmSection, info: TableInfo) -> list[Plan]:
    """One plan per field ``section`` receives, the section's Planhat key excepted (its key column provides it).

    Raises:
        SyncError: A field other than ``custom`` is mapped twice for receive.
        WarehouseError: A mapped column is not in ``info``.
    """
    plans: list[Plan] = []
    seen: set[str] = set()
    for i, fm in enumerate(section.receive_fields()):
        if fm.planhat == section.planhat_key:
            continue  # the key column already provides it
        if fm.planhat in seen and fm.planhat != "custom":
            raise SyncError(
                f"section '{section.name}': field '{fm.planhat}' is mapped twice for receive. "
                "Fix: keep one mapping, or narrow one of them to 'direction: send'"
            )
        seen.add(fm.planhat)
        kind = info.column(fm.warehouse).kind
        src = _source(fm, kind)
        where = f"field {fm.planhat}"
        bad_json = f"{lit(where + ': column ' + repr(fm.warehouse) + ' does not hold valid JSON')}"
        if fm.planhat == "custom":
            plans.append(_custom_object_plan(fm, src, bad_json))
        elif fm.is_custom:
            plans.append(_custom_field_plan(fm, kind, src, bad_json))
        elif is_relation(section, fm):
            plans.append(_relation_plan(section, fm, i, src.text))
        else:
            plans.append(_standard_plan(section, fm, kind, src, bad_json))
    return plans


def _custom_object_plan(fm: FieldMapping, src: _Source, bad_json: str) -> Plan:
    """``planhat: custom``: a JSON object whose keys become custom fields; anything else rejects the row."""
    where = f"field {fm.planhat}"
    error = (
        f"CASE WHEN {src.not_json or 'FALSE'} THEN {bad_json} "
        f"WHEN {src.js} IS NOT NULL AND json_type({src.js}) <> 'OBJECT' THEN "
        f"{lit(where + ': column ' + repr(fm.warehouse) + ' holds ')} || lower(json_type({src.js})) || "
        f"{lit(', not a JSON object whose keys become custom fields')} END"
    )
    value = f"(CASE WHEN json_type({src.js}) = 'OBJECT' THEN {src.js} END)"
    return Plan(fm, value, error, shown=src.shown)


def _custom_field_plan(fm: FieldMapping, kind: ColumnKind, src: _Source, bad_json: str) -> Plan:
    """``planhat: custom.<name>``: the value as JSON, keeping its JSON type."""
    checks = f"WHEN {src.not_json} THEN {bad_json} " if src.not_json else ""
    if kind is ColumnKind.FLOAT and not fm.path:
        # JSON has no NaN or infinity: such a number would make the stored custom fields invalid JSON.
        checks += _number_error(f"field {fm.planhat}", src, src.raw, FieldType.NUMBER)
    return Plan(fm, src.js, f"CASE {checks}END" if checks else None, shown=src.shown)


def _relation_plan(section: CrmSection, fm: FieldMapping, i: int, text: str) -> Plan:
    """A company reference: the join finding the company's native id by ``company_match``, and the reasons."""
    match = section.company_match
    alias = f"__rel{i}"
    ref = trim_sql(text)  # references match exactly after trimming, like keys
    join = (
        f"LEFT JOIN (SELECT {trim_sql(f'CAST(c.{q(match)} AS VARCHAR)')} AS ref, min(c.id) AS id, count(*) AS n "
        f"FROM company c WHERE c.{q(match)} IS NOT NULL GROUP BY 1) AS {alias} ON {alias}.ref = {ref}"
    )
    where = f"field {fm.planhat}: "
    # A parent arriving in this same batch is found by the section key when company_match is that key.
    in_batch = fm.planhat == "parentId" and match == section.planhat_key
    batch_hit = f"{ref} IN (SELECT __key FROM __crm_keys)" if in_batch else "FALSE"
    error = (
        f"CASE WHEN {ref} IS NULL THEN NULL "
        f"WHEN {alias}.n > 1 THEN {lit(where + match + ' ' + chr(39))} || {ref} || "
        f"{lit(chr(39) + ' matches ')} || {alias}.n || ' companies' "
        f"WHEN {alias}.id IS NULL AND NOT ({batch_hit}) THEN "
        f"{lit(where + 'no company has ' + match + ' ' + chr(39))} || {ref} || "
        f"{lit(chr(39) + ' (sync the companies first, or fix the reference)')} END"
    )
    value = f"COALESCE({alias}.id, CASE WHEN {batch_hit} THEN {lit(PENDING_PARENT)} || {ref} END)"
    return Plan(fm, value, error, join, pending=ref if in_batch else None, shown=f"left({text}, 100)")


def custom_patch(section: CrmSection, plans: list[Plan]) -> str | None:
    """SQL for the row's custom-field JSON patch, or None when the section maps no custom field."""
    named = [(p.fm.custom_name, f"v{i}") for i, p in enumerate(plans) if p.fm.custom_name]
    wholes = [f"v{i}" for i, p in enumerate(plans) if p.fm.planhat == "custom"]
    if not named and not wholes:
        return None
    empty = "CAST([] AS STRUCT(key VARCHAR, value JSON)[])"
    names = ", ".join(lit(str(n)) for n, _ in named)
    # A named custom field wins over the same key of a whole object. (Without named fields there is no
    # filter: "NOT IN (NULL)" is NULL, which used to drop every key of the object.)
    keep = f"lambda e: e.key NOT IN ({names})" if named else "lambda e: TRUE"
    parts = [
        f"COALESCE(list_filter(map_entries(TRY_CAST({w} AS MAP(VARCHAR, JSON))), {keep}), {empty})" for w in wholes
    ]
    if named:
        parts.append("[" + ", ".join(f"struct_pack(key := {lit(str(n))}, value := {v})" for n, v in named) + "]")
    entries = f"list_concat({', '.join(parts)})" if len(parts) > 1 else parts[0]
    if not section.null_overwrites:
        # A warehouse null must not wipe a stored custom field: drop null entries from the patch.
        entries = f"list_filter({entries}, lambda e: e.value IS NOT NULL)"
    return f"to_json(map_from_entries({entries}))"


def values_sql(plans: list[Plan]) -> str:
    """The select items of the converted values, ``v<i>`` for plan ``i`` (empty without plans)."""
    return ", ".join(f"{p.value} AS v{i}" for i, p in enumerate(plans))


def joins_sql(plans: list[Plan]) -> str:
    """The joins the plans' values and reasons need (the relations')."""
    return " ".join(p.join for p in plans)


def field_error_sql(plans: list[Plan]) -> str:
    """SQL for every reason the row's fields are refused, joined with '; ' (NULL when all are fine)."""
    field_errors = [p.error for p in plans if p.error]
    return f"NULLIF(concat_ws('; ', {', '.join(field_errors)}), '')" if field_errors else "NULL"


def field_value_sql(plans: list[Plan]) -> str:
    """SQL for the offending value recorded with a reject: the first refused field's (NULL when none is)."""
    bad_values = " ".join(f"WHEN ({p.error}) IS NOT NULL THEN {p.shown}" for p in plans if p.error)
    return f"CASE {bad_values} END" if bad_values else "NULL"


def store_columns_sql(section: CrmSection, plans: list[Plan]) -> list[str]:
    """The select items turning a validated row (``__key``, ``v<i>``) into the model table's columns."""
    out = [f"__key AS {q(section.planhat_key)}"]
    out += [f"v{i} AS {q(p.fm.planhat)}" for i, p in enumerate(plans) if not p.fm.is_custom]
    patch = custom_patch(section, plans)
    if patch:
        out.append(f"{patch} AS custom")
    return out
