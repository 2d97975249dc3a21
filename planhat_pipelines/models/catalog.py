"""The fourteen Planhat models as data: fields, types, identity keys and relations.

Field names follow Planhat's public API. The catalog drives the store's DDL, the config
validation (which fields and keys a section may map) and the Dagster asset descriptions.

Money (``FieldType.MONEY``: MRR, ARR, license and sale values, invoice amounts, churned value) is
``DECIMAL(38,6)`` in the store, never a binary float: sums stay exact (three NUMERIC(12,2) ARRs of
100000.10, 200000.00 and 44983.10 add up to 344983.20, not 344983.19999999995). Scale 6 keeps a derived
MRR (ARR / 12, rounded half away from zero) to a millionth of a currency unit, so per-license MRRs summed
into a company still round correctly to cents, and it holds three-decimal currencies (KWD, BHD) exactly;
precision 38 leaves 32 digits before the point, enough for any amount in any currency (DECIMAL(18,x) would
cap a weak currency at a trillion). It is exact in BigQuery NUMERIC (38,9) and Snowflake NUMBER(38,6).

End User ``email`` is ``FieldType.EMAIL``: text, stored trimmed and lower-cased (see :func:`email_sql`),
and rejected unless it matches :data:`EMAIL_PATTERN`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class FieldType(Enum):
    """A standard field's type; each maps to one DuckDB type."""

    TEXT = "text"
    NUMBER = "number"
    INTEGER = "integer"
    BOOLEAN = "boolean"
    DATE = "date"
    DATETIME = "datetime"
    JSON = "json"
    MONEY = "money"
    EMAIL = "email"

    @property
    def duckdb_type(self) -> str:
        return _DUCKDB_TYPES[self]


_DUCKDB_TYPES = {
    FieldType.TEXT: "VARCHAR",
    FieldType.NUMBER: "DOUBLE",
    FieldType.INTEGER: "BIGINT",
    FieldType.BOOLEAN: "BOOLEAN",
    FieldType.DATE: "DATE",
    FieldType.DATETIME: "TIMESTAMP",
    FieldType.JSON: "JSON",
    FieldType.MONEY: "DECIMAL(38,6)",
    FieldType.EMAIL: "VARCHAR",
}

#: Digits after the decimal point of a MONEY value (see the module docstring for the choice).
MONEY_SCALE = 6
#: Digits before the decimal point a MONEY value can hold.
MONEY_INTEGER_DIGITS = 38 - MONEY_SCALE

#: What counts as an email address (RE2 / DuckDB ``regexp_full_match``): exactly one '@', a non-empty part
#: before it, a domain after it with at least one dot between non-empty labels, and no whitespace anywhere.
#: Deliberately simple: it catches typos and junk ('not-an-email@@', 'a b@c.com', '@x.com'), not every RFC rule.
EMAIL_PATTERN = r"[^@\s]+@[^@\s.]+(\.[^@\s.]+)+"
#: The whitespace trimmed around keys, references and emails: RE2's ``\s`` (space, tab, LF, FF, CR).
TRIM_PATTERN = r"^\s+|\s+$"


def trim_sql(expr: str) -> str:
    """DuckDB SQL for ``expr`` (text) without surrounding whitespace; NULL when nothing is left.

    A regular expression rather than ``trim(x, chars)``: DuckDB's ``trim`` alone strips only spaces, and
    with a character list it is about twice as slow as this on a million keys.
    """
    return f"NULLIF(regexp_replace({expr}, '{TRIM_PATTERN}', '', 'g'), '')"


def email_sql(expr: str) -> str:
    """DuckDB SQL for the stored form of an email: trimmed and lower-cased; NULL when blank.

    Every End User email the CRM sync writes is in this form, so a lookup by email compares
    ``email_sql(reference)`` (``lower(trim(reference))`` is the same for references whose surrounding
    whitespace is spaces only) with the stored value.
    """
    return f"lower({trim_sql(expr)})"


@dataclass(frozen=True)
class FieldSpec:
    """One standard field of a model.

    Attributes:
        name: The field's name in Planhat's API (camelCase), also the store column.
        type: Its type.
        derived: Computed by the store (e.g. Company ARR from licenses); never received.
    """

    name: str
    type: FieldType = FieldType.TEXT
    derived: bool = False


@dataclass(frozen=True)
class Relation:
    """A reference from one model to another.

    Attributes:
        field: The referencing field (holds the target's native id).
        target: The slug of the referenced model.
        many: True when the field holds a JSON array of ids (many-to-many).
    """

    field: str
    target: str
    many: bool = False


@dataclass(frozen=True)
class ModelSpec:
    """A Planhat model.

    Attributes:
        slug: Lower-case identifier used in config files and as the store table name.
        name: Display name as Planhat shows it.
        fields: Standard fields besides the identity fields and ``custom``.
        keys: The Planhat-side fields a sync section may match records by.
        relations: References to other models.
        time_series: Whether usage data (activities or metrics) can attach to this model.
    """

    slug: str
    name: str
    fields: tuple[FieldSpec, ...]
    keys: tuple[str, ...] = ("sourceId", "externalId", "id")
    relations: tuple[Relation, ...] = ()
    time_series: bool = False
    description: str = ""
    _by_name: dict[str, FieldSpec] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for spec in self.all_fields:
            self._by_name[spec.name] = spec

    @property
    def identity_fields(self) -> tuple[FieldSpec, ...]:
        return (FieldSpec("id"), FieldSpec("sourceId"), FieldSpec("externalId"))

    @property
    def all_fields(self) -> tuple[FieldSpec, ...]:
        """Identity fields, then standard fields (``custom`` is not a standard field)."""
        return self.identity_fields + self.fields

    def field(self, name: str) -> FieldSpec | None:
        """The standard or identity field called ``name``, or None."""
        return self._by_name.get(name)

    @property
    def company_field(self) -> str | None:
        """The field that links a record to its owning company, if the model has one."""
        for relation in self.relations:
            if relation.target == "company" and not relation.many and relation.field == "companyId":
                return relation.field
        return None


T = FieldType
_COMPANY_OWNED = Relation("companyId", "company")


def _f(name: str, type_: FieldType = T.TEXT, *, derived: bool = False) -> FieldSpec:
    return FieldSpec(name, type_, derived)


MODELS: dict[str, ModelSpec] = {
    spec.slug: spec
    for spec in (
        ModelSpec(
            "company",
            "Company",
            (
                _f("name"),
                _f("parentId"),
                _f("phase"),
                _f("status", derived=True),
                _f("owner"),
                _f("coOwner"),
                _f("domains", T.JSON),
                _f("country"),
                _f("city"),
                _f("description"),
                _f("mrr", T.MONEY, derived=True),
                _f("arr", T.MONEY, derived=True),
                _f("renewalDate", T.DATE, derived=True),
                _f("customerFrom", T.DATE, derived=True),
                _f("customerTo", T.DATE, derived=True),
                _f("h", T.NUMBER, derived=True),
            ),
            relations=(Relation("parentId", "company"),),
            time_series=True,
            description="The parent model: your customer. Parent/child via parentId.",
        ),
        ModelSpec(
            "enduser",
            "End User",
            (
                _f("email", T.EMAIL),
                _f("companyId"),
                _f("firstName"),
                _f("lastName"),
                _f("position"),
                _f("phone"),
                _f("featured", T.BOOLEAN),
                _f("lastActive", T.DATETIME),
            ),
            keys=("sourceId", "externalId", "email", "id"),
            relations=(_COMPANY_OWNED,),
            time_series=True,
            description="Contacts and users; many to one with Company.",
        ),
        ModelSpec(
            "license",
            "License",
            (
                _f("companyId"),
                _f("fromDate", T.DATE),
                _f("toDate", T.DATE),
                _f("mrr", T.MONEY),
                _f("arr", T.MONEY),
                _f("value", T.MONEY),
                _f("currency"),
                _f("product"),
                _f("autoRenews", T.BOOLEAN),
                _f("renewalStatus"),
                _f("opportunityId"),
            ),
            relations=(_COMPANY_OWNED, Relation("opportunityId", "opportunity")),
            description="Recurring revenue; drives Company ARR/MRR, renewal date and customer since/to.",
        ),
        ModelSpec(
            "opportunity",
            "Opportunity",
            (
                _f("companyId"),
                _f("title"),
                _f("status"),
                _f("salesStage"),
                _f("mrr", T.MONEY),
                _f("arr", T.MONEY),
                _f("closeDate", T.DATE),
                _f("ownerId"),
            ),
            relations=(_COMPANY_OWNED,),
            description="Sales processes (renewal, new business, upsell); can convert into licenses.",
        ),
        ModelSpec(
            "sale",
            "Sale",
            (
                _f("companyId"),
                _f("product"),
                _f("value", T.MONEY),
                _f("currency"),
                _f("date", T.DATE),
            ),
            relations=(_COMPANY_OWNED,),
            description="Non-recurring revenue such as implementation fees.",
        ),
        ModelSpec(
            "invoice",
            "Invoice",
            (
                _f("companyId"),
                _f("licenseId"),
                _f("invoiceNo"),
                _f("amountDue", T.MONEY),
                _f("amountPaid", T.MONEY),
                _f("currency"),
                _f("status"),
                _f("invoiceDate", T.DATE),
                _f("dueDate", T.DATE),
            ),
            relations=(_COMPANY_OWNED, Relation("licenseId", "license")),
            description="Amounts paid or due; may relate to a license.",
        ),
        ModelSpec(
            "issue",
            "Issue",
            (
                _f("title"),
                _f("description"),
                _f("status"),
                _f("priority"),
                _f("companyIds", T.JSON),
            ),
            relations=(Relation("companyIds", "company", many=True),),
            description="Feature requests; many to many with Company (companyIds).",
        ),
        ModelSpec(
            "project",
            "Project",
            (
                _f("companyId"),
                _f("name"),
                _f("status"),
                _f("startDate", T.DATE),
                _f("endDate", T.DATE),
            ),
            relations=(_COMPANY_OWNED,),
            time_series=True,
            description="Time-bound sub-entities of a company; receive time-series data.",
        ),
        ModelSpec(
            "asset",
            "Asset",
            (_f("companyId"), _f("name"), _f("type")),
            relations=(_COMPANY_OWNED,),
            time_series=True,
            description="Sub-entities of a company (departments, environments); receive time-series data.",
        ),
        ModelSpec(
            "nps",
            "NPS",
            (
                _f("companyId"),
                _f("endUserId"),
                _f("score", T.INTEGER),
                _f("comment"),
                _f("date", T.DATETIME),
            ),
            relations=(_COMPANY_OWNED, Relation("endUserId", "enduser")),
            description="NPS survey results.",
        ),
        ModelSpec(
            "churn",
            "Churn",
            (
                _f("companyId"),
                _f("reasons", T.JSON),
                _f("comment"),
                _f("value", T.MONEY),
                _f("date", T.DATE),
                _f("licenseIds", T.JSON),
            ),
            relations=(_COMPANY_OWNED, Relation("licenseIds", "license", many=True)),
            description="Why customers churned.",
        ),
        ModelSpec(
            "conversation",
            "Conversation",
            (
                _f("companyId"),
                _f("type"),
                _f("subject"),
                _f("description"),
                _f("date", T.DATETIME),
                _f("endUserIds", T.JSON),
                _f("taskId"),
            ),
            relations=(_COMPANY_OWNED, Relation("endUserIds", "enduser", many=True), Relation("taskId", "task")),
            description="Emails, calls, tickets and chats with customers.",
        ),
        ModelSpec(
            "task",
            "Task",
            (
                _f("companyId"),
                _f("title"),
                _f("description"),
                _f("status"),
                _f("dueDate", T.DATETIME),
                _f("ownerId"),
                _f("endUserIds", T.JSON),
            ),
            relations=(_COMPANY_OWNED, Relation("endUserIds", "enduser", many=True)),
            description="Scheduled work items; done tasks become conversations.",
        ),
        ModelSpec(
            "workflow",
            "Workflow",
            (
                _f("companyId"),
                _f("endUserId"),
                _f("name"),
                _f("templateId"),
                _f("status"),
                _f("startDate", T.DATE),
            ),
            relations=(_COMPANY_OWNED, Relation("endUserId", "enduser")),
            description="Templated sequences of tasks for a company or end user.",
        ),
    )
}


def get_model(slug: str) -> ModelSpec:
    """The model called ``slug``; raises KeyError listing the known slugs."""
    try:
        return MODELS[slug]
    except KeyError:
        raise KeyError(f"unknown model '{slug}'; known models: {', '.join(sorted(MODELS))}") from None
