"""File datastore: path templates, formatters per storage class, atomic writes, retrieval."""

from ._retrieval import INDEX_NAME, TRANSFER_MODES, TransferMode
from ._uri import ArtifactURI, DatasetRefURIs
from .file_datastore import DEFAULT_DATASTORE_NAME, FileDatastore
from .formatters import FORMATTERS, Formatter
from .templates import DEFAULT_TEMPLATE, PathTemplate

__all__ = [
    "DEFAULT_DATASTORE_NAME",
    "DEFAULT_TEMPLATE",
    "FORMATTERS",
    "INDEX_NAME",
    "TRANSFER_MODES",
    "ArtifactURI",
    "DatasetRefURIs",
    "FileDatastore",
    "Formatter",
    "PathTemplate",
    "TransferMode",
]
