"""What the sandbox's servers share: ``with`` starts one and closes it at the end."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class Lifetime:
    """A server ``with`` starts (``start()``) and closes (``close()``) at the block's end."""

    def start(self) -> Self:
        """Start serving; the server itself."""
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
