"""Which parts of a rejected batch to resend, so good records land and each bad one is named.

The Cloud Connector rejects a whole array for one bad record. Resending the parts isolates the
culprits: when the error names the record (``record 7: ...``) we cut around it — three calls find
one bad record — otherwise we bisect. The hint is only a guide: each part is sent and judged on
its own answer, so a wrong hint costs calls, never correctness.
"""

from __future__ import annotations

from itertools import pairwise


def split_plan(size: int, hint: int | None) -> list[slice]:
    """Consecutive, non-empty slices covering ``range(size)``, in order (order is preserved)."""
    if size <= 1:
        return [slice(0, size)]
    if hint is not None and 0 <= hint < size:
        cuts = [0, hint, hint + 1, size]
    else:
        cuts = [0, size // 2, size]
    return [slice(a, b) for a, b in pairwise(cuts) if b > a]
