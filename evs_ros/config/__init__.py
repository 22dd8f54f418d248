"""Typed configuration: the one source of truth for every setting of evs_ros.

One frozen dataclass per concern (``sections``), each field carrying its help, range and
allowed values (``fields``), read from dotted names and params files (``flat``). The ROS node
(``evs_ros/ros/params.py``), the ``evs`` command line and the benchmarks all build their
settings through :func:`config_from_flat`, so they cannot drift apart. Every field that maps to
a ROS parameter has a non-``None`` default (rclpy infers a parameter's type from its default).
Validation lives in ``__post_init__`` and raises a ``ValueError`` that names the setting and
what is allowed.

Paper references point into *Efficient Video Semantic Segmentation with Labels Propagation and
Refinement* (Paul et al.): operating points are its Table 2, DIS parameters its §4.3.1.
"""

from evs_ros.config.backends import BACKENDS, backend_kinds, spec_usage, split_spec  # noqa: F401
from evs_ros.config.fields import (  # noqa: F401
    DEVICES, DIS_PRESETS, ENGINES, FLOW_METHODS, PRECISIONS, QOS_RELIABILITY, ParameterInfo,
    allowed_text, setting, validate_fields,
)
from evs_ros.config.flat import (  # noqa: F401
    config_from_flat, load_parameters, load_yaml, to_flat, truth_value,
)
from evs_ros.config.sections import (  # noqa: F401
    BASELINE, OPERATING_POINT_FIELDS, OPERATING_POINTS, PARAMETER_INFO, PRESET_NAMES,
    RESTART_REQUIRED, SECTIONS,
    EvsConfig, FlowConfig, IamConfig, ModelConfig, OperatingPoint, PublishConfig, RuntimeConfig,
    canonical_preset_name, effective_flow, operating_point, window_size,
)
