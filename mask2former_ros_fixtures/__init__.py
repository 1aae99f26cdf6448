"""
Test and demo fixtures: the tiny trained model, synthetic scenes, sample bags, the demo.

Not part of the installed runtime: the node and segment_bag never import it.
"""
