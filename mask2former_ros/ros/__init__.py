"""ROS adapter: the lifecycle node and its parameters, messages, diagnostics and launch helpers."""
