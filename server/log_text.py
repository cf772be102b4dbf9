"""Text log lines that caller input cannot forge: control characters escaped, one place.

A text log line quotes what callers send: method names, paths, user agents, flow
project/flow strings, exception messages that repeat a bad value. A newline in any of them
would start what looks like a new log line. :func:`escape_log_text` turns every control
character into a visible escape, and :class:`EscapingFormatter` applies it to the message of
every record, so no call site has to remember it (tracebacks, added after the message by
the formatter, keep their lines)::

    >>> escape_log_text("echo\\n2026-12-04 INFO forged")
    'echo\\\\n2026-12-04 INFO forged'

The JSON log format needs none of this: JSON strings escape control characters themselves.
"""

from __future__ import annotations

import logging

__all__ = ["EscapingFormatter", "escape_log_text"]

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}

#: C0 and C1 control characters, DEL, and Unicode's line and paragraph separators.
_CONTROL_CODE_POINTS = [*range(0x20), 0x7F, *range(0x80, 0xA0), 0x2028, 0x2029]

_ESCAPES = str.maketrans(
    {
        code_point: _NAMED.get(chr(code_point))
        or (f"\\x{code_point:02x}" if code_point < 0x100 else f"\\u{code_point:04x}")
        for code_point in _CONTROL_CODE_POINTS
    }
)


def escape_log_text(text: str) -> str:
    """``text`` with every control character as a visible escape, so it stays on one line.

    ``\\n``, ``\\r`` and ``\\t`` become those two-character escapes; other C0/C1 controls and
    DEL become ``\\xNN``; U+2028 and U+2029 become ``\\u2028``/``\\u2029``. Everything else,
    other non-ASCII text included, is kept.

    Args:
        text: any string, e.g. a log message with caller input in it.

    Returns:
        The escaped string (``text`` itself when there was nothing to escape).
    """
    return text.translate(_ESCAPES)


class EscapingFormatter(logging.Formatter):
    """A :class:`logging.Formatter` whose messages go through :func:`escape_log_text`.

    The record's message (its format string with the arguments put in) is escaped; the
    exception text and stack that :meth:`format` appends after it are not, so a traceback
    still spans its lines.
    """

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        """Format ``record`` with its ``message`` escaped (see the class doc)."""
        record.message = escape_log_text(record.message)
        return super().formatMessage(record)
