"""W3C PROV (PROV-JSON): quanta as activities, datasets as entities, one bundle per run.

The mapping (``docs/interop.md``): each quantum attempt is a ``prov:Activity``
with its start and end; each dataset a ``prov:Entity`` named ``urn:uuid:<id>``;
an actual input is ``used`` at the time it was first read or requested, an
actual output ``wasGeneratedBy`` at its write, a pruned dataset
``wasInvalidatedBy``; predicted inputs found missing and inputs marked unused
are ``qbb:`` attributes of the activity. ``wasDerivedFrom`` (every actual
output from every actual input of its quantum) only on request: it grows as
their product.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import quote

from ..records import FileRecord
from ._attempts import QuantumAttempt, ref_label

__all__ = ["PROV_PREFIXES", "QBB_PROV_NAMESPACE", "ProvBuilder"]

QBB_PROV_NAMESPACE: Final = "https://qbb-events.invalid/ns/prov#"
"""Namespace of the ``qbb:`` attributes."""
PROV_PREFIXES: Final = {
    "qbb": QBB_PROV_NAMESPACE,
    "uuid": "urn:uuid:",
    "quantum": "urn:qbb-events:quantum:",
    "run": "urn:qbb-events:run:",
}
"""Prefixes every document declares: ``uuid:<id>`` is the URI ``urn:uuid:<id>``."""


def _time(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat(timespec="microseconds")


def _qname(value: str) -> dict[str, str]:
    return {"$": value, "type": "prov:QUALIFIED_NAME"}


def _entity_id(dataset_id: uuid.UUID) -> str:
    return f"uuid:{dataset_id}"


def _ids(ids: Iterable[uuid.UUID]) -> list[str]:
    return [f"urn:uuid:{i}" for i in sorted(ids)]


def _record_attributes(record: FileRecord) -> dict[str, Any]:
    return {
        "qbb:datastore": record.datastore_name,
        "qbb:path": record.path,
        "qbb:checksum": record.checksum,
        "qbb:file_size": record.file_size,
    }


class ProvBuilder:
    """Collects quantum attempts into one PROV-JSON document.

    Parameters
    ----------
    derivations : `bool`, optional
        Also state ``wasDerivedFrom`` between each actual output and each
        actual input of its quantum.
    """

    def __init__(self, *, derivations: bool = False) -> None:
        self._derivations = derivations
        self._bundles: dict[str, dict[str, dict[str, Any]]] = {}
        self._relations = 0

    def _relation(self, bundle: dict[str, dict[str, Any]], kind: str, body: dict[str, Any]) -> None:
        self._relations += 1
        bundle.setdefault(kind, {})[f"_:{kind[0]}{self._relations}"] = body

    def add(self, attempt: QuantumAttempt) -> None:
        """Add one attempt to the bundle of its run.

        Parameters
        ----------
        attempt : `QuantumAttempt`
            A verified, folded attempt.
        """
        bundle = self._bundles.setdefault(f"run:{quote(attempt.run, safe='')}", {})
        p = attempt.provenance
        activity = f"quantum:{attempt.quantum_id}.{attempt.attempt}"
        finished = attempt.finished
        bundle.setdefault("activity", {})[activity] = {
            "prov:startTime": _time(attempt.started.timestamp_ns),
            "prov:endTime": _time(attempt.last_ns),
            "prov:label": attempt.started.quantum.task_label or "unknown",
            "prov:type": _qname("qbb:Quantum"),
            "qbb:quantum_id": f"urn:uuid:{attempt.quantum_id}",
            "qbb:attempt": attempt.attempt,
            "qbb:status": finished.status if finished else "aborted",
            "qbb:missing_inputs": _ids(p.unavailable_inputs),
            "qbb:unused_inputs": _ids(attempt.marked_unused),
        }
        records = {r.dataset_id: r for rs in p.datastore_records.values() for r in rs}
        entities = bundle.setdefault("entity", {})
        refs = attempt.refs
        for dataset_id in (*attempt.used_ns, *attempt.generated_ns, *attempt.invalidated_ns):
            entity = entities.setdefault(
                _entity_id(dataset_id), {"prov:type": _qname("qbb:Dataset")}
            )
            ref = refs.get(dataset_id)
            if ref is not None:
                entity.update(
                    {
                        "prov:label": ref_label(ref),
                        "qbb:dataset_type": ref.dataset_type or "unknown",
                        "qbb:run": ref.run or attempt.run,
                    }
                )
            if dataset_id in records:
                entity.update(_record_attributes(records[dataset_id]))
        for dataset_id, ns in sorted(attempt.used_ns.items()):
            self._relation(
                bundle,
                "used",
                {
                    "prov:activity": activity,
                    "prov:entity": _entity_id(dataset_id),
                    "prov:time": _time(ns),
                },
            )
        for dataset_id, ns in sorted(attempt.generated_ns.items()):
            self._relation(
                bundle,
                "wasGeneratedBy",
                {
                    "prov:entity": _entity_id(dataset_id),
                    "prov:activity": activity,
                    "prov:time": _time(ns),
                },
            )
        for dataset_id, ns in sorted(attempt.invalidated_ns.items()):
            self._relation(
                bundle,
                "wasInvalidatedBy",
                {
                    "prov:entity": _entity_id(dataset_id),
                    "prov:activity": activity,
                    "prov:time": _time(ns),
                },
            )
        if self._derivations:
            for output in sorted(attempt.generated_ns):
                for used in sorted(attempt.used_ns):
                    self._relation(
                        bundle,
                        "wasDerivedFrom",
                        {
                            "prov:generatedEntity": _entity_id(output),
                            "prov:usedEntity": _entity_id(used),
                            "prov:activity": activity,
                        },
                    )

    def document(self) -> dict[str, Any]:
        """Return the PROV-JSON document of everything added.

        Returns
        -------
        document : `dict`
            ``prefix``, one ``prov:Bundle`` entity per run, and ``bundle``.
        """
        return {
            "prefix": dict(PROV_PREFIXES),
            "entity": {name: {"prov:type": _qname("prov:Bundle")} for name in self._bundles},
            "bundle": {
                name: {"prefix": dict(PROV_PREFIXES), **body}
                for name, body in self._bundles.items()
            },
        }
