"""File datastore: path templates, formatters per storage class, atomic writes."""

from .file_datastore import FileDatastore
from .formatters import FORMATTERS, Formatter
from .templates import DEFAULT_TEMPLATE, PathTemplate

__all__ = ["DEFAULT_TEMPLATE", "FORMATTERS", "FileDatastore", "Formatter", "PathTemplate"]
