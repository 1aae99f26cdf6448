"""
Offline segmentation of rosbag2 bags (``segment_bag``): one bag, or a fleet of bags.

Modules: :mod:`.errors` (exit codes, SegmentBagError), :mod:`.options` (the options table),
:mod:`.bag_io` (rosbags reading/writing), :mod:`.ground_truth`, :mod:`.stages` (per-frame work),
:mod:`.pipeline` (prefetch and writer threads), :mod:`.run` (one bag), :mod:`.fleet` and
:mod:`.driver` (several bags), :mod:`.ray_workers` (Ray actors), :mod:`.summary`,
:mod:`.progress`, :mod:`.cli`. Nothing here imports torch until a model is loaded.
"""

from mask2former_ros.offline.driver import segment_fleet
from mask2former_ros.offline.errors import SegmentBagError
from mask2former_ros.offline.options import FleetOptions, Options
from mask2former_ros.offline.run import segment_bag

__all__ = ['FleetOptions', 'Options', 'SegmentBagError', 'segment_bag', 'segment_fleet']
