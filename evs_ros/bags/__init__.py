"""evs_ros.bags.

Label recorded ROS 2 bags offline, one bag (``evs bag``) or a fleet's archive on a Ray cluster
(``evs fleet``).

Modules: ``labelling`` (one bag, a chunk of one, merging chunks; atomic outputs and the per-bag
summary), ``network`` (the network of ``config.model`` in an EvsPipeline), ``chunks`` (time chunks
on the keyframe grid), ``borders`` (how chunk borders change the labels), ``discovery`` (the bags
of IN), ``manifest`` (checksums, settings hash, what a rerun skips), ``weights_dir`` (a network
folder shipped to the workers), ``fleet`` (the driver) and ``fleet_tasks`` (the Ray tasks; the
only module that imports ``ray`` at load time), ``report`` (markdown + JSON).
"""
