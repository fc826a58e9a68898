"""Why a loopback peer could not be used."""


class PeerUnavailable(RuntimeError):
    """A peer's program is not installed here; tests skip on it unless integration is required."""


class PeerStartError(RuntimeError):
    """A peer was found but did not come up; the message names its log file."""
