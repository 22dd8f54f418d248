"""Class names for consumers: ``vision_msgs/LabelInfo`` on a transient-local topic.

vision_msgs is optional (not on PyPI): where it is installed every camera publishes its network's
class names once per start, on ``label_info`` next to ``labels``, with transient-local durability
so that late subscribers get them; ``class_id`` is the value in the ``labels`` image. Without
vision_msgs the names are still the node's read-only ``class_names`` parameter.
"""

from typing import Callable, Optional, Sequence

from evs_ros.ros import qos

try:
    from vision_msgs.msg import LabelInfo, VisionClass
except ImportError:  # not installed: names only as the class_names parameter
    LabelInfo = VisionClass = None


def label_info_msg(class_names: Sequence[str], stamp=None):
    """Return a LabelInfo listing ``class_names`` in id order (None without vision_msgs)."""
    if LabelInfo is None:
        return None
    msg = LabelInfo()
    if stamp is not None:
        msg.header.stamp = stamp
    msg.class_map = [VisionClass(class_id=index, class_name=str(name))
                     for index, name in enumerate(class_names)]
    return msg


def label_info_publisher(create_publisher: Callable, topic: str) -> Optional[object]:
    """Return a latched ``topic`` publisher made with ``create_publisher(type, topic, qos)``.

    None without vision_msgs.
    """
    if LabelInfo is None:
        return None
    return create_publisher(LabelInfo, topic, qos.profile('reliable', 1, latched=True))


def publish_label_info(node, publisher, class_names: Sequence[str]) -> None:
    """Publish the names once on ``publisher`` (nothing when it is None)."""
    if publisher is not None:
        publisher.publish(label_info_msg(class_names, node.get_clock().now().to_msg()))
