"""QoS of every topic (REP-2003) and the standard per-topic overrides.

Defaults, as REP-2003 recommends for sensor pipelines:

* the ``image`` subscription uses sensor-data QoS (best effort, keep last): it matches every camera
  driver, best effort or reliable;
* every output is published reliable, keep last: a reliable publisher serves reliable subscribers
  (rviz2 and most nodes by default) and best-effort ones alike;
* ``label_info`` is reliable and transient local, so late subscribers get the class names.

``publish.qos_reliability`` / ``publish.input_qos_reliability`` / ``publish.qos_depth`` change the
defaults node-wide; the standard ROS 2 override parameters refine any single topic, e.g.
``qos_overrides./front/labels.publisher.reliability: best_effort`` or
``qos_overrides./front/image.subscription.depth: 5`` (history, depth, reliability, durability;
read at start-up, like every ROS 2 node's).
"""

from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSPolicyKind, QoSProfile,
                       ReliabilityPolicy)
from rclpy.qos_overriding_options import QoSOverridingOptions

RELIABILITY = {'best_effort': ReliabilityPolicy.BEST_EFFORT,
               'reliable': ReliabilityPolicy.RELIABLE}
OVERRIDABLE = (QoSPolicyKind.HISTORY, QoSPolicyKind.DEPTH, QoSPolicyKind.RELIABILITY,
               QoSPolicyKind.DURABILITY)


def profile(reliability: str, depth: int, latched: bool = False) -> QoSProfile:
    """Keep-last QoS of ``depth`` with ``reliability`` ('best_effort' or 'reliable').

    ``latched`` adds transient-local durability.
    """
    durability = DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=RELIABILITY[reliability], durability=durability)


def overrides() -> QoSOverridingOptions:
    """Declare the standard ``qos_overrides`` parameters for a publisher or subscription.

    ``qos_overrides.<topic>.<publisher|subscription>.<policy>``.
    """
    return QoSOverridingOptions(policy_kinds=OVERRIDABLE)


def output_profile(publish_config) -> QoSProfile:
    """Return the outputs' profile: reliable keep-last by default (``publish.qos_reliability``)."""
    return profile(publish_config.qos_reliability, publish_config.qos_depth)


def input_profile(publish_config) -> QoSProfile:
    """Return the image subscription's profile: sensor data by default."""
    return profile(publish_config.input_qos_reliability, publish_config.qos_depth)
