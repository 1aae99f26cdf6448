"""ROS-free core: engine, post-processing, palette, class tables, metrics, frame slot, stats."""
