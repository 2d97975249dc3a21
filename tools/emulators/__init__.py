"""Local warehouse emulators for the tests, the benchmarks and ``make demo WAREHOUSE=bigquery|snowflake``.

- :mod:`tools.emulators.processes`: start a server in its own session, wait until it answers, stop its group.
- :mod:`tools.emulators.bigquery_launcher`: local-bigquery from its own venv (``make emulators``).
- :mod:`tools.emulators.snowflake_launcher`: a fakesnow server in a child process (``python -m tools.emulators``).
- :mod:`tools.emulators.seeding`: copy the demo data into an emulator through the warehouse's own client.
- :mod:`tools.emulators.demo`: the emulator the demo config points at, started on its ports and seeded.

Nothing is imported here, so importing one launcher does not load the others' clients.
"""

from __future__ import annotations

from pathlib import Path

#: The checkout this package sits in. ``tools/`` is never installed (only ``planhat_pipelines*`` is packaged),
#: so this file is always ``<checkout>/tools/emulators/__init__.py`` and the lookup cannot land elsewhere.
CHECKOUT = Path(__file__).resolve().parents[2]
