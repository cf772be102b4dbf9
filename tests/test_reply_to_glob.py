"""The reply_to pattern reads Redis globs as Redis does (server.bus.admission.glob_matcher)."""

from __future__ import annotations

import pytest

from server.bus.admission import glob_matcher


@pytest.mark.parametrize(
    "pattern, key, matches",
    [
        ("sbusr:reply:*", b"sbusr:reply:5f0c", True),
        ("sbusr:reply:*", b"sbusr:reply:", True),
        ("sbusr:reply:*", b"celery", False),
        ("sbusr:reply:*", b"xsbusr:reply:1", False),
        ("sbusr:reply:*", b"sbusr:reply:a\nb", True),
        ("app:r?ply", b"app:reply", True),
        ("app:r?ply", b"app:rply", False),
        ("app:[ab]:*", b"app:b:1", True),
        ("app:[^ab]:*", b"app:b:1", False),
        ("app:[^ab]:*", b"app:c:1", True),
        ("app:[a-c]", b"app:b", True),
        ("app:[a-c]", b"app:d", False),
        ("app:\\*", b"app:*", True),
        ("app:\\*", b"app:x", False),
        ("app:[", b"app:[", True),
        ("a.b", b"axb", False),
    ],
)
def test_glob_matcher_reads_redis_globs(pattern: str, key: bytes, matches: bool) -> None:
    assert glob_matcher(pattern)(key) is matches
