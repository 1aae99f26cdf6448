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

"""Build randomly initialised Mask2Former checkpoints for tests and benchmarks (no downloads)."""

from pathlib import Path

from mask2former_ros.core.cityscapes import CITYSCAPES_CLASSES

# Backbone presets: 'swin-tiny' matches the Swin-T Mask2Former (embed 96, depths 2-2-6-2).
BACKBONES: dict[str, dict] = {
    'tiny': {'embed_dim': 32, 'depths': [1, 1, 2, 1], 'num_heads': [1, 2, 4, 8],
             'window_size': 7, 'hidden_dim': 64, 'decoder_layers': 3, 'num_queries': 20},
    'swin-tiny': {'embed_dim': 96, 'depths': [2, 2, 6, 2], 'num_heads': [3, 6, 12, 24],
                  'window_size': 7, 'hidden_dim': 256, 'decoder_layers': 10,
                  'num_queries': 100},
}


def mask2former_config(preset: str = 'tiny', class_names: tuple[str, ...] = CITYSCAPES_CLASSES):
    """Return a ``Mask2FormerConfig`` with a Swin backbone of the given preset."""
    from transformers import Mask2FormerConfig, SwinConfig

    spec = BACKBONES[preset]
    backbone = SwinConfig(
        embed_dim=spec['embed_dim'], depths=spec['depths'], num_heads=spec['num_heads'],
        window_size=spec['window_size'], drop_path_rate=0.0,
        out_features=['stage1', 'stage2', 'stage3', 'stage4'])
    hidden = spec['hidden_dim']
    return Mask2FormerConfig(
        backbone_config=backbone, use_pretrained_backbone=False,
        hidden_dim=hidden, mask_feature_size=hidden, feature_size=hidden,
        encoder_feedforward_dim=hidden * 4, dim_feedforward=hidden * 8,
        encoder_layers=6 if preset != 'tiny' else 1, decoder_layers=spec['decoder_layers'],
        num_queries=spec['num_queries'], num_labels=len(class_names),
        id2label=dict(enumerate(class_names)),
        label2id={name: i for i, name in enumerate(class_names)})


def save_random_checkpoint(out_dir: Path, preset: str = 'tiny', image_size: int = 384,
                           class_names: tuple[str, ...] = CITYSCAPES_CLASSES,
                           seed: int = 0, safe_serialization: bool = True) -> Path:
    """Save a random-weight Mask2Former and a squash-to-square preprocessor config."""
    import torch
    from transformers import Mask2FormerForUniversalSegmentation, Mask2FormerImageProcessorPil

    torch.manual_seed(seed)
    model = Mask2FormerForUniversalSegmentation(mask2former_config(preset, class_names)).eval()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    if not safe_serialization:  # legacy pickle checkpoint, to test that it is refused
        torch.save(model.state_dict(), out_dir / 'pytorch_model.bin')
        (out_dir / 'model.safetensors').unlink()
    Mask2FormerImageProcessorPil(
        size={'height': image_size, 'width': image_size}, size_divisor=32,
        ignore_index=255, do_reduce_labels=False).save_pretrained(out_dir)
    return out_dir
