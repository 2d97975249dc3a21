"""A dry run in Dagster: a section's preview recorded as an asset observation, never a materialization."""

import json
from collections.abc import Iterator, Sequence

import dagster as dg

from planhat_pipelines.config import Config
from planhat_pipelines.defs.naming import crm_asset_key, usage_asset_key
from planhat_pipelines.defs.resources import StoreResource, WarehousesResource
from planhat_pipelines.preview import Preview, preview_sections


def _metadata_name(count: str) -> str:
    """``would_<count>`` as a metadata key: ``remove (on_missing)`` -> ``would_remove``."""
    return "would_" + count.split(" (")[0].replace(" ", "_")


def preview_observation(key: dg.AssetKey, preview: Preview, partition_keys: Sequence[str] = ()) -> dg.AssetObservation:
    """The observation a ``dry_run: true`` run records: what the section would write, and sample changes.

    An observation, not a materialization: the asset's last materialization stays the last real sync, and the
    assets downstream of it in the run are skipped (its spec is skippable and the op yields no output).
    """
    samples = json.loads(json.dumps(preview.as_json()["samples"], default=str))
    metadata: dict[str, dg.MetadataValue] = {
        "dry_run": dg.MetadataValue.bool(True),
        **{_metadata_name(name): dg.MetadataValue.int(n) for name, n in preview.counts.items()},
        "log": dg.MetadataValue.text("\n".join(preview.log)),
        "sample_changes": dg.MetadataValue.json(samples),
    }
    if partition_keys:
        metadata["ranges"] = dg.MetadataValue.text(", ".join(partition_keys))
    return dg.AssetObservation(asset_key=key, metadata=metadata)


PREVIEW_JOB = "sync_preview"


class PreviewRunConfig(dg.Config):
    """Run config of the ``sync_preview`` job."""

    sections: list[str] = []
    """The sections to preview (default: every CRM and usage section)."""
    full: bool = False
    """Preview a full sync of the CRM sections."""


def build_preview_defs(config: Config) -> dg.Definitions:
    """``sync_preview``: the whole job as a dry run, one observation per section, nothing written anywhere.

    Each section is previewed on its own against the store as it is (a section that depends on another's
    records sees them as the last real run left them). A section whose real run would fail fails the job
    after every observation was recorded.
    """
    if not config.crm and not config.usage:
        return dg.Definitions()
    keys = {s.name: crm_asset_key(s) for s in config.crm} | {s.name: usage_asset_key(s) for s in config.usage}
    app_config = config  # the op's own ``config`` parameter is its run config

    @dg.op(name="preview_sections", description="Preview every (or the chosen) sync section; writes nothing.", out={})
    def _preview(
        context: dg.OpExecutionContext,
        config: PreviewRunConfig,
        store: StoreResource,
        warehouses: WarehousesResource,
    ) -> Iterator[dg.AssetObservation]:
        with store.open() as model_store:
            previews = preview_sections(
                app_config, config.sections or None, full=config.full, store=model_store, warehouse_for=warehouses.open
            )
        for preview in previews:
            context.log.info(preview.describe())
            yield preview_observation(keys[preview.section], preview)
        failing = [p for p in previews if p.error]
        if failing:
            raise dg.Failure(
                description="; ".join(f"{p.section}: {p.error}" for p in failing),
                metadata={"sections": ", ".join(p.section for p in failing)},
                allow_retries=False,
            )

    @dg.job(name=PREVIEW_JOB, description="Dry run of every sync section: what each would write; writes nothing.")
    def _job() -> None:
        _preview()

    return dg.Definitions(jobs=[_job])
