"""evs_ros.tools."""
