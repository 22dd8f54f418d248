"""Numbers for JSON reports: JSON has no NaN or infinity, so they become ``null``.

Every report (``evs bench``, ``evs eval``, ``evs run``, ``evs demo``) writes through
:func:`evs_ros.tools.common.write_json`, which applies :func:`json_safe` to the whole document.
"""

import math
from typing import Optional


def finite_or_none(value, digits: Optional[int] = 6) -> Optional[float]:
    """Return ``value`` as a float rounded to ``digits`` (None: as is); None if not finite."""
    if value is None or not math.isfinite(value):
        return None
    return float(value) if digits is None else round(float(value), digits)


def json_safe(value):
    """Return ``value`` with every non-finite float (in dicts, lists, tuples) made None."""
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
