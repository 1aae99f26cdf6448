# Copyright 2026 mask2former_ros maintainers
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

"""
Peak memory of semantic post-processing at native resolution: query chunks vs all queries.

Q=200 queries (the Swin-L Cityscapes checkpoints' count), 19 classes, mask logits on a 256x512
grid, score grid and output 1024x2048 (``input_size: native`` on a Cityscapes frame), noisy
masks so that the dense path runs. Each variant runs in its own process; the peak is the
growth of the process' maximum resident set over its state just before the call (CPU; on a
GPU the same bound applies to ``torch.cuda.max_memory_allocated``).

    python bench/bench_postprocess_memory.py
"""

import json
from pathlib import Path
import subprocess
import sys
import tempfile

import numpy as np

CHILD = """
import json, resource, sys, time
import numpy as np
import torch
from mask2former_ros.core.postprocess import semantic as sp
chunk = int(sys.argv[1])
torch.manual_seed(0)
logits = torch.randn(200, 256, 512) * 4
probs = torch.randn(200, 20).softmax(-1)[:, :-1].contiguous()
sp.QUERY_CHUNK = chunk
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
labels, _ = sp.semantic_inference(probs, logits, 1024, 2048, score_grid=(1024, 2048))
ms = (time.perf_counter() - started) * 1e3
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
np.save(sys.argv[2], labels.numpy())
print(json.dumps({'chunk': chunk, 'peak_mb': (after - before) / 1024, 'ms': ms}))
"""


def run(chunk: int, labels: Path) -> dict:
    """Run one variant in a fresh process; its labels go to ``labels`` (.npy)."""
    out = subprocess.run([sys.executable, '-c', CHILD, str(chunk), str(labels)], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> int:
    """Print peak MB and ms per variant."""
    from mask2former_ros.core.postprocess.semantic import QUERY_CHUNK
    tmp = Path(tempfile.mkdtemp())
    rows = [run(QUERY_CHUNK, tmp / 'chunked.npy'), run(200, tmp / 'all.npy')]
    agree = float((np.load(tmp / 'chunked.npy') == np.load(tmp / 'all.npy')).mean())
    print('Q=200, 19 classes, 256x512 mask grid -> 1024x2048, dense path, CPU')
    print(f"{'variant':32}{'peak MB':>10}{'ms':>10}")
    for row, name in zip(rows, (f'query chunks of {QUERY_CHUNK} (engine)',
                                'all 200 queries at once'), strict=True):
        print(f"{name:32}{row['peak_mb']:>10.0f}{row['ms']:>10.0f}")
    print(f"peak ratio all/chunked: x{rows[1]['peak_mb'] / rows[0]['peak_mb']:.1f}; labels "
          f'agree on {agree * 100:.4f} % of pixels (summation order; noisy random masks)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
