"""evs_ros.ros."""
