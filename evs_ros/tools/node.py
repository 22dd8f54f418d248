"""``evs node``: run evs_node without ``ros2 run`` (same arguments, e.g. ``--ros-args -p ...``)."""


def main(argv) -> int:
    from evs_ros.ros.node import main as node_main
    return node_main(['evs_node'] + list(argv))
