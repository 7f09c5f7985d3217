"""Errors raised on bad input.

Every reader and structure validates its input once, at the border, and raises
:class:`DataError` with the file, the sample and the field that are wrong, so a user
never sees a stack trace from deep inside torch.
"""

from __future__ import annotations


class DataError(ValueError):
    """Bad input data.

    Args:
        message: what is wrong.
        file: the file the data came from, if any.
        sample: the sample (image id, frame key, video id, row) that is wrong, if known.
        field: the field (``boxes``, ``labels``, ``relations`` ...) that is wrong, if known.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        sample: object | None = None,
        field: str | None = None,
    ) -> None:
        self.file = file
        self.sample = sample
        self.field = field
        # one line, always: messages quoted from libraries can span several
        message = " ".join(part.strip() for part in str(message).splitlines() if part.strip())
        where = []
        if file is not None:
            where.append(f"file {file}")
        if sample is not None:
            where.append(f"sample {sample!r}")
        if field is not None:
            where.append(f"field '{field}'")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)

    def with_context(
        self, *, file: str | None = None, sample: object | None = None, field: str | None = None
    ) -> DataError:
        """A copy of this error with missing context filled in (existing context wins)."""
        msg = str(self)
        # Rebuild from the original message part: strip an old prefix if present.
        base = (
            msg.split(": ", 1)[1] if (self.file or self.sample is not None or self.field) else msg
        )
        return DataError(
            base,
            file=self.file if self.file is not None else file,
            sample=self.sample if self.sample is not None else sample,
            field=self.field if self.field is not None else field,
        )


def require_flag(field: str, value: object, *, optional: bool = False) -> None:
    """Raise :class:`DataError` naming ``field`` unless ``value`` is a boolean (or ``None``
    where ``optional``): an option given as 1, ``"yes"`` or ``null`` is refused, not coerced."""
    if isinstance(value, bool) or (optional and value is None):
        return
    allowed = "true, false or null" if optional else "true or false"
    raise DataError(f"{field} must be {allowed}, got {value!r}", field=field)
