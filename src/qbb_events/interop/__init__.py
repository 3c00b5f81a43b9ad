"""Interchange: provenance for the tools people already run.

OpenLineage ``RunEvent`` NDJSON for lineage catalogs, W3C PROV-JSON for
research data management (``docs/interop.md``); LSST's own provenance JSON is
`QuantumProvenanceData.to_lsst_json` / `QuantumProvenanceData.from_lsst_json`.
"""

from ._export import (
    LineageFormat,
    LineageReport,
    export_lineage,
    openlineage_events,
    post_openlineage,
    prov_document,
)
from ._openlineage import OPENLINEAGE_SCHEMA_URL
from ._prov import QBB_PROV_NAMESPACE

__all__ = [
    "OPENLINEAGE_SCHEMA_URL",
    "QBB_PROV_NAMESPACE",
    "LineageFormat",
    "LineageReport",
    "export_lineage",
    "openlineage_events",
    "post_openlineage",
    "prov_document",
]
