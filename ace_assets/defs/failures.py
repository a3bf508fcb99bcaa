"""Bad input surfaces in the UI as a Dagster Failure whose text names file, line and column."""

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from ace_assets.errors import AceInputError


@contextmanager
def input_errors_as_failures() -> Iterator[None]:
    """Turn AceInputError into ``dg.Failure`` so the run page shows the message, not a traceback."""
    try:
        yield
    except AceInputError as exc:
        metadata = {k: v for k, v in (("file", exc.file), ("column", exc.column)) if v}
        if exc.line is not None:
            metadata["line_number"] = exc.line
        if exc.row is not None:
            metadata["row"] = exc.row
        raise dg.Failure(description=str(exc), metadata=metadata, allow_retries=False) from None
