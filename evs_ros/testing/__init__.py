"""The DDS harness of the tests and the benchmarks: not part of the node.

:mod:`~evs_ros.testing.player` plays frames into a running evs_node and records its outputs;
:mod:`~evs_ros.testing.session` starts the installed node in an isolated ROS domain and plays
clips through it (``evs demo``, ``evs bench latency`` and the integration tests). It sits above
``ros`` in the layers (it uses the node's topic names and conversions) and below ``tools``.
"""
