"""The won-deal field mapping is checked when the config loads: one line naming the place and the fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from planhat_pipelines.errors import ConfigError
from planhat_pipelines_tests.builders import config_doc, parse


@pytest.mark.parametrize(
    ("won_deal", "message"),
    [
        (
            {"fields": {"fromDat": "closeDate"}},
            "behaviours.won_deal_license.fields.fromDat: unknown License field 'fromDat'. "
            "Fix: did you mean 'fromDate'? use one of: fromDate, toDate,",
        ),
        (
            {"fields": {"arr": "ar"}},
            "behaviours.won_deal_license.fields.arr: unknown Opportunity field 'ar'. "
            "Fix: did you mean 'arr'? use one of:",
        ),
        (
            {"fields": {"opportunityId": "id"}},
            "behaviours.won_deal_license.fields.opportunityId: License.opportunityId is set by the behaviour itself. "
            "Fix: remove it",
        ),
        (
            {"defaults": {"curency": "EUR"}},
            "behaviours.won_deal_license.defaults.curency: unknown License field 'curency'. "
            "Fix: did you mean 'currency'?",
        ),
        (
            {"defaults": {"companyId": "x"}},
            "behaviours.won_deal_license.defaults.companyId: License.companyId is set by the behaviour itself.",
        ),
    ],
    ids=["unknown-license-field", "unknown-opportunity-field", "own-field", "unknown-default", "own-default"],
)
def test_a_bad_won_deal_mapping_is_refused(tmp_path: Path, won_deal: dict[str, Any], message: str) -> None:
    doc = config_doc(tmp_path, behaviours={"won_deal_license": won_deal})
    with pytest.raises(ConfigError) as caught:
        parse(doc, tmp_path)
    assert str(caught.value).startswith(f"{tmp_path / 'config.yaml'}: {message}")


def test_a_good_mapping_loads(tmp_path: Path) -> None:
    doc = config_doc(
        tmp_path,
        behaviours={
            "won_deal_license": {"fields": {"value": "arr", "fromDate": "closeDate"}, "defaults": {"currency": "EUR"}}
        },
    )
    won = parse(doc, tmp_path).behaviours.won_deal_license
    assert (dict(won.fields), dict(won.defaults)) == ({"value": "arr", "fromDate": "closeDate"}, {"currency": "EUR"})
