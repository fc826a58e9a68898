"""The service's own errors: each names the place, what was found and what is allowed."""


class IngestError(RuntimeError):
    """Base of the errors the CLI prints without a traceback."""


class ConfigError(IngestError):
    """A setting is missing or invalid for the command that was run."""


class StorageError(IngestError):
    """The object store refused or failed a request."""


class ChecksumMismatch(StorageError):
    """A copied object's digest differs from what its source declared."""


class CatalogError(IngestError):
    """A STAC API answered with an error."""


class SourceError(IngestError):
    """An upstream STAC API or asset server failed."""


def failure_text(error: BaseException) -> str:
    """What a report names a failed item or source with: an IngestError's own message, another
    error's type and message; never empty (a silent error reads `<Type> (with no message)`)."""
    text = str(error) if isinstance(error, IngestError) else f"{type(error).__name__}: {error}"
    return text if text.strip() else f"{type(error).__name__} (with no message)"
