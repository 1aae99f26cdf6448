"""Mask2Former semantic segmentation for ROS 2 camera topics."""
