"""The model catalog: all fourteen models, their identity keys and relations."""

from __future__ import annotations

import pytest

from planhat_pipelines.models import MODELS, FieldType, get_model

EXPECTED = {
    "company",
    "enduser",
    "license",
    "opportunity",
    "sale",
    "invoice",
    "issue",
    "project",
    "asset",
    "nps",
    "churn",
    "conversation",
    "task",
    "workflow",
}


def test_all_fourteen_models() -> None:
    assert set(MODELS) == EXPECTED


def test_every_model_but_company_and_issue_belongs_to_a_company() -> None:
    owned = {slug for slug, m in MODELS.items() if m.company_field == "companyId"}
    assert owned == EXPECTED - {"company", "issue"}
    assert get_model("company").relations[0].field == "parentId"
    (issue_rel,) = get_model("issue").relations
    assert issue_rel.many and issue_rel.target == "company"


def test_keys_and_api_field_names() -> None:
    assert get_model("enduser").keys == ("sourceId", "externalId", "email", "id")
    assert get_model("company").keys == ("sourceId", "externalId", "id")
    company = get_model("company")
    for name in (
        "name",
        "externalId",
        "sourceId",
        "phase",
        "status",
        "owner",
        "domains",
        "mrr",
        "arr",
        "renewalDate",
        "customerFrom",
        "customerTo",
    ):
        assert company.field(name) is not None, name
    for name in ("companyId", "fromDate", "toDate", "mrr", "arr", "value", "product", "autoRenews", "renewalStatus"):
        assert get_model("license").field(name) is not None, name
    assert get_model("license").field("fromDate").type is FieldType.DATE  # type: ignore[union-attr]
    derived = {f.name for f in company.fields if f.derived}
    assert derived == {"status", "mrr", "arr", "renewalDate", "customerFrom", "customerTo", "h"}


def test_time_series_models() -> None:
    assert {s for s, m in MODELS.items() if m.time_series} == {"company", "enduser", "asset", "project"}


def test_unknown_model_names_the_choices() -> None:
    with pytest.raises(KeyError, match="known models: asset, churn"):
        get_model("account")


MONEY_FIELDS = {
    "company": {"mrr", "arr"},
    "license": {"mrr", "arr", "value"},
    "opportunity": {"mrr", "arr"},
    "sale": {"value"},
    "invoice": {"amountDue", "amountPaid"},
    "churn": {"value"},
}


def test_money_fields_are_decimal() -> None:
    """Every amount of money is a MONEY field (DECIMAL in the store); no standard field is a DOUBLE."""
    money = {slug: {f.name for f in m.fields if f.type is FieldType.MONEY} for slug, m in MODELS.items()}
    assert {slug: names for slug, names in money.items() if names} == MONEY_FIELDS
    assert FieldType.MONEY.duckdb_type == "DECIMAL(38,6)"
    # The one NUMBER field is the health score (0-10, one decimal): a score, not an amount.
    assert [f"{s}.{f.name}" for s, m in MODELS.items() for f in m.fields if f.type is FieldType.NUMBER] == ["company.h"]


def test_end_user_email_is_an_email_field() -> None:
    assert get_model("enduser").field("email").type is FieldType.EMAIL  # type: ignore[union-attr]
    assert FieldType.EMAIL.duckdb_type == "VARCHAR"
