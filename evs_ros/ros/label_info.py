"""Class names for consumers: ``vision_msgs/LabelInfo`` on a transient-local topic.

vision_msgs is optional (not on PyPI): where it is installed every camera publishes its network's
class names once, on ``label_info`` next to ``labels``, with transient-local durability so that
late subscribers get them; ``class_id`` is the value in the ``labels`` image. Without vision_msgs
the names are still the node's read-only ``class_names`` parameter.
"""

from typing import Optional, Sequence

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


def publish_label_info(node, topic: str, class_names: Sequence[str]) -> Optional[object]:
    """Create a latched ``topic`` publisher and publish the names once.

    None without vision_msgs.
    """
    msg = label_info_msg(class_names, node.get_clock().now().to_msg())
    if msg is None:
        return None
    publisher = node.create_publisher(LabelInfo, topic, qos.profile('reliable', 1, latched=True))
    publisher.publish(msg)
    return publisher
