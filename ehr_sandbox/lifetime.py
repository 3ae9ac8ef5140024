"""What the sandbox's servers share: ``with`` starts one and closes it at the end."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class Lifetime:
    """A server ``with`` starts (``start()``) and closes (``close()``) at the block's end;
    a subclass says how to start (``_start``) and how to close."""

    def start(self) -> Self:
        """Start serving; on any failure, close what had started. The server itself."""
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def _start(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Stop serving and release what the server holds."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
