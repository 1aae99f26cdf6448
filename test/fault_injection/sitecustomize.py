"""
Test-only fault injection, loaded by the node subprocess through PYTHONPATH.

Makes Mask2Former's forward raise ``torch.OutOfMemoryError`` for an all-black frame, as a GPU
running out of memory on one frame would. The node under test is otherwise unchanged.
"""

import os

if os.environ.get('MASK2FORMER_TEST_FAULT') == 'oom_on_black':
    import torch
    from transformers import Mask2FormerForUniversalSegmentation

    _forward = Mask2FormerForUniversalSegmentation.forward

    def _faulty_forward(self, pixel_values, *args, **kwargs):
        if float(pixel_values.float().std(dim=(-2, -1)).max()) < 1e-6:  # a constant frame
            raise torch.OutOfMemoryError('CUDA out of memory (injected by the test)')
        return _forward(self, pixel_values, *args, **kwargs)

    Mask2FormerForUniversalSegmentation.forward = _faulty_forward
