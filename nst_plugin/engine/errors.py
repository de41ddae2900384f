"""Errors a user can act on. Hosts show their message as is; it names the problem and the fix."""


class NSTError(Exception):
    """Base of every error this package raises on purpose."""


class WeightsError(NSTError):
    """A weights file is missing, corrupt or of the wrong kind."""


class InputError(NSTError):
    """An input image, mask or parameter is unusable."""


class WriteError(NSTError):
    """An output could not be written (full disk, read-only or forbidden folder); whatever was at
    that path before is still there."""


class Cancelled(NSTError):
    """The caller asked a running job to stop; `partial` is the last image, if there was one
    (an engine tensor inside the engine; the task hands hosts an `images.Picture`)."""

    def __init__(self, message: str = "cancelled", partial: object | None = None) -> None:
        super().__init__(message)
        self.partial = partial
