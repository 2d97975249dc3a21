"""The CRM sync: one section keeps one Planhat model in the store in step with one warehouse table or view.

Pure core (no Dagster). Warehouse rows arrive as Arrow batches, are staged in temp tables of the store's
DuckDB connection and are validated, converted and matched with set-based SQL; nothing loops over rows.

Directions
    A section is ``receive`` (warehouse -> store), ``send`` (store -> warehouse) or ``both``. A field's
    direction only narrows its section's (the config checks it). :func:`sync_section` runs receive, then
    send, as Planhat does.

Conflicts (the same field changed on both sides since the last sync)
    Because receive runs before send, **the warehouse value wins** for every field whose direction is
    ``both``: receive writes it into the store, then send writes the store value (now the warehouse's)
    back. Fields that are ``send`` only are never received, so for them the store (Planhat) value wins;
    fields that are ``receive`` only are never sent, so the warehouse value wins there too.

Keys
    Planhat side: sourceId, externalId, email (End User) or the native id (send only). Warehouse side: a
    column whose values are unique and text. Rows whose key is null/empty or occurs more than once are
    rejected (every copy of a duplicate: none is picked silently) and recorded as rejects; the rest of
    the section syncs. A section in which no row has a usable key fails with KeyValidationError. A key
    column that is not text (INTEGER, NUMBER, ...) fails the section before anything is written: cast it
    to STRING/VARCHAR in a view and point the section at the view (receive) - text keys keep leading
    zeros and never change when a number type is widened.

Matching: how keys and references compare
    sourceId, externalId and native ids (keys, and the ``company_match`` of a company reference) match
    **exactly after trimming** surrounding whitespace (space, tab, CR, LF, FF) on both sides: a
    warehouse key ' C-1 ' is stored as 'C-1', matches 'C-1', and is a duplicate of a 'C-1' row; case
    matters. End User **emails are normalised in the store**, not only compared: receive stores
    ``lower(trim(email))`` (:func:`planhat_pipelines.models.catalog.email_sql`), whether email is the
    section's key or a mapped field, so 'Ann@X.com ' arrives as 'ann@x.com', and 'ANN@x.com' is the same
    End User (two such rows are one duplicate key). Anything that looks an End User up by email (the
    usage sync) compares ``lower(trim(...))`` of its reference with the stored value. An email that is
    not one (``EMAIL_PATTERN``: one '@', a non-empty part before it, a domain with a dot, no
    whitespace - 'not-an-email@@', 'a b@c.com', '@x.com') rejects its row naming the field and value; a
    blank email field is null. Send writes a record back under the warehouse's own spelling of a matched
    key, so the MERGE updates the row ' C-1 ' or 'Ann@X.com ' instead of adding 'C-1' / 'ann@x.com'.
    A store written before these rules has its keys and emails normalised once when it is opened
    (``store/schema.py``), so its records keep matching.

Fields
    ``planhat: name`` maps a standard field, converted explicitly to the catalog type with TRY_CAST; a
    value that is present but does not convert rejects the row ("field mrr: 'abc' is not a number").
    Numbers must be finite and fit: NaN, +/-inf (a DOUBLE column's or text such as 'inf') and values
    out of range ('1e400', more than 32 digits before the point for money) reject the row with the
    field named; so does a NaN/infinite DOUBLE mapped to a ``custom.<name>`` field (JSON has neither).
    Money fields are DECIMAL(38,6) (see the catalog): a NUMERIC/DECIMAL column arrives exactly, more
    than 6 decimals round half away from zero, and send writes a DECIMAL column as DECIMAL (never
    through a DOUBLE), so 1234567890123456.78 stays exact both ways.
    ``planhat: custom.<name>`` maps one custom field (values keep their JSON type; a JSON object stays an
    object). ``planhat: custom`` lands a whole JSON object in the custom fields, from a JSON/VARIANT
    column or a text column holding JSON text (a non-object, or text that is not JSON, rejects the row;
    blank text holds nothing). ``path: plan.tier`` picks a nested attribute of a JSON/VARIANT column. A warehouse
    null leaves the stored value alone unless the section sets ``null_overwrites: true``; the same rule
    holds for send (a store null does not wipe a warehouse value unless ``null_overwrites``).

Relations
    ``companyId`` of company-owned models and Company ``parentId`` hold the warehouse's reference to a
    company, matched by the section's ``company_match`` (externalId, sourceId or native id); the store
    keeps the company's native id, and send maps it back. An unknown (or ambiguous) company rejects the
    row. A parent that arrives in the same run as its child is resolved when ``company_match`` is the
    section's Planhat key.

Receive is diff-based at two levels. A source row whose values hash the same as when this section last
accepted it (``crm_source_hashes``; the hash includes the section's mapping, so a config change re-reads
everything) skips validation and the store altogether, except in a full sync, which compares every row
again; rejected rows have no hash and are retried every run. The remaining rows are compared with the
store and only new or changed records are written. Receive runs in one store transaction per section,
together with the derived Company fields (License and Company sections) and the change-tracking cursor:
a failure leaves the store as it was. Rejects and the sync log are written outside that transaction, so
a failed run is still logged. Every rejected source row is its own reject record (key, reason, the
offending value, and a fingerprint: the hash of the row's source values plus ``#<n>``, its occurrence
among identical rows), so three null-key rows are three records, both copies of a duplicate key two,
and ``rejected`` is the number of records the run wrote. Warehouses with change tracking
(``capabilities.change_tracking``) are read partially since the stored cursor; where that is unavailable
the section falls back to a full read and says why in the log lines. Records that left the source (missing
from a full read, or deleted as change tracking reports) are kept, as Planhat keeps them, unless the section
sets ``on_missing: archive | delete``; a send section with ``mirror: true`` deletes the target rows whose
records left the store. Both are bounded by ``delete_limit`` and checked before anything is written
(:mod:`.deletes`). Every write is recorded in the change log (``store/change_log.py``), and any run can be a
preview (``dry_run``: one store transaction rolled back, nothing sent).

Send writes only fields whose direction includes send, only for records that are new or differ from
the warehouse, by ``Warehouse.merge`` on the warehouse key column in batches. Fields with a ``path`` are
not sent (the nested object cannot be rebuilt one attribute at a time). A view is refused before
anything is written.

Modules: :mod:`.deletes` (on_missing, mirror, the delete limit), :mod:`.fields` (the field-to-SQL
compiler), :mod:`.keys` (key matching and the key column's checks), :mod:`.read` (the read plan),
:mod:`.receive`, :mod:`.send`, :mod:`.section` (:func:`sync_section`), :mod:`.progress`, :mod:`.result`,
:mod:`.sql` (shared helpers).
"""

from planhat_pipelines.sync.crm.keys import check_send_target
from planhat_pipelines.sync.crm.progress import CrmProgress, CrmProgressFn
from planhat_pipelines.sync.crm.receive import receive
from planhat_pipelines.sync.crm.result import CrmResult
from planhat_pipelines.sync.crm.section import sync_section
from planhat_pipelines.sync.crm.send import send
from planhat_pipelines.sync.crm.sql import DEFAULT_BATCH_SIZE, NULL_KEY

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "NULL_KEY",
    "CrmProgress",
    "CrmProgressFn",
    "CrmResult",
    "check_send_target",
    "receive",
    "send",
    "sync_section",
]
