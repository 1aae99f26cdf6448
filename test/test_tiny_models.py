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
The trained tiny models shipped in mask2former_ros_fixtures/models/ and the command that made them.

The suite never trains a full model: it checks that the shipped files are the ones their
manifest lists, that they were made by today's recipe, that they still reach their quality
gate in a real (small) evaluation, and it runs a training step of the command as a smoke test.
"""

import json
import math

from mask2former_ros.core.segmentation_task import TASK_CONFIG_KEY
from mask2former_ros_fixtures import tiny_model
import pytest

TASKS = ('semantic', 'panoptic')


def _info(task: str) -> dict:
    return json.loads((tiny_model.shipped_model_dir(task) / 'training_info.json').read_text())


def test_shipped_models_match_their_manifest():
    """Every file of both models is listed in SHA256SUMS with its hash (sha256sum -c agrees)."""
    assert tiny_model.manifest_mismatches() == []
    manifest = (tiny_model.MODELS_DIR / tiny_model.MANIFEST).read_text()
    for task in TASKS:
        for name in tiny_model._REQUIRED_FILES:
            assert f'  {tiny_model.SHIPPED_NAMES[task]}/{name}\n' in manifest, (task, name)


def test_manifest_check_sees_a_changed_missing_or_unlisted_file(tmp_path):
    """A flipped byte, a deleted file and an extra file are each reported."""
    import shutil

    models = tmp_path / 'models'
    shutil.copytree(tiny_model.MODELS_DIR, models)
    assert tiny_model.manifest_mismatches(models) == []
    config = models / 'tiny_street' / 'config.json'
    config.write_text(config.read_text() + ' ')
    (models / 'tiny_street_panoptic' / 'README.md').unlink()
    (models / 'tiny_street' / 'extra.bin').write_bytes(b'x')
    assert tiny_model.manifest_mismatches(models) == [
        'tiny_street/config.json: sha256 differs from SHA256SUMS',
        'tiny_street_panoptic/README.md: missing',
        'tiny_street/extra.bin: not in SHA256SUMS']


@pytest.mark.parametrize('task', TASKS)
def test_shipped_model_was_made_by_this_recipe(task):
    """The recorded recipe is today's (a changed recipe must be retrained and shipped again)."""
    info = _info(task)
    assert info['task'] == task
    assert info['recipe'] == tiny_model._recipe(task)
    assert info['seed'] in tiny_model.QUALITY_SEEDS
    assert info['steps'] == tiny_model._default_steps(task)
    assert tiny_model._quality_shortfall(info, task) == '', info
    config = json.loads((tiny_model.shipped_model_dir(task) / 'config.json').read_text())
    assert config[TASK_CONFIG_KEY] == task
    assert config['num_queries'] == tiny_model._head_kwargs(task)['num_queries']


@pytest.mark.parametrize('task', TASKS)
def test_shipped_model_reaches_its_quality_gate(task):
    """
    The gate's evaluation at its smallest size, run again: the recorded figure, above the bar.

    Same scenes (seed), count and size as recorded in training_info.json, through the HF
    pre-/post-processing; inference on another CPU may flip a few pixels, hence the tolerance.
    """
    info = _info(task)
    recorded = min(info['evaluation'], key=lambda ev: ev['height'] * ev['width'])
    size = {'seed': recorded['seed'], 'n': recorded['n'], 'height': recorded['height'],
            'width': recorded['width']}
    model_dir = tiny_model.shipped_model_dir(task)
    if task == 'panoptic':
        ev = tiny_model.evaluate_pq(model_dir, **size)
        assert ev['pq'] == pytest.approx(recorded['pq'], abs=0.01), ev
        assert ev['pq_things'] == pytest.approx(recorded['pq_things'], abs=0.02), ev
        assert ev['pq'] >= tiny_model.MIN_PQ and ev['pq_things'] >= tiny_model.MIN_PQ_THINGS
    else:
        ev = tiny_model.evaluate_miou(model_dir, **size)
        assert ev['miou'] == pytest.approx(recorded['miou'], abs=0.005), ev
        assert ev['miou'] >= tiny_model.MIN_MIOU


def test_ensure_tiny_model_uses_the_shipped_models_unless_the_environment_names_one(
        monkeypatch, tmp_path):
    """No training by default: the shipped directories, or the ones the variables name."""
    for task in TASKS:
        monkeypatch.delenv(tiny_model.MODEL_ENV[task], raising=False)
        assert tiny_model.ensure_tiny_model(task=task) == tiny_model.shipped_model_dir(task)
    assert tiny_model.ensure_tiny_panoptic_model() == tiny_model.shipped_model_dir('panoptic')
    monkeypatch.setenv(tiny_model.MODEL_ENV['panoptic'],
                       str(tiny_model.shipped_model_dir('panoptic')))
    monkeypatch.setenv(tiny_model.MODEL_ENV['semantic'], str(tmp_path / 'elsewhere'))
    monkeypatch.setattr(tiny_model, 'train_checked', lambda out_dir, log, task: [
        (out_dir / name).write_text('{}') for name in tiny_model._REQUIRED_FILES])
    assert tiny_model.ensure_tiny_model(log=lambda m: None) == tmp_path / 'elsewhere'
    assert tiny_model.ensure_tiny_panoptic_model() == tiny_model.shipped_model_dir('panoptic')


def test_a_missing_shipped_model_says_how_to_get_it_back(monkeypatch, tmp_path):
    """An incomplete checkout raises one clear error instead of training for minutes."""
    monkeypatch.delenv(tiny_model.MODEL_ENV['semantic'], raising=False)
    monkeypatch.setattr(tiny_model, 'MODELS_DIR', tmp_path / 'pkg' / 'fixtures' / 'models')
    monkeypatch.setattr(tiny_model, 'train_checked', lambda *a, **k: pytest.fail('trained'))
    with pytest.raises(FileNotFoundError, match=r'lacks config.json, model.safetensors.*'
                       r'git checkout -- fixtures/models/tiny_street.*--task semantic --out DIR'
                       r'.*MASK2FORMER_ROS_TINY_MODEL=DIR'):
        tiny_model.ensure_tiny_model()


@pytest.mark.parametrize('task', TASKS)
def test_training_command_smoke(task, tmp_path, capsys):
    """One training step through the command line: a saved, loadable, evaluated model."""
    out = tmp_path / task
    assert tiny_model.main(['--task', task, '--steps', '1', '--eval-images', '1',
                            '--out', str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary['task'] == task and summary['steps'] == 1 and summary['seed'] == 0
    info = json.loads((out / 'training_info.json').read_text())
    assert info['recipe'] == tiny_model._recipe(task) and math.isfinite(info['final_loss'])
    assert [(ev['height'], ev['width']) for ev in info['evaluation']] == list(
        tiny_model.PANOPTIC_EVAL_SIZES if task == 'panoptic' else tiny_model.EVAL_SIZES)
    assert tiny_model._is_complete(out) and (out / 'README.md').is_file()
    model, _ = tiny_model.load_tiny_model(out)
    assert getattr(model.config, TASK_CONFIG_KEY) == task
