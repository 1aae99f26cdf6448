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

"""ament_python build description for mask2former_ros (colcon on ROS 2, or pip)."""

from glob import glob
import os

from setuptools import find_packages, setup

package_name = 'mask2former_ros'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(include=['mask2former_ros', 'mask2former_ros.*']),
    package_data={'mask2former_ros.offline': ['templates/*.html.j2']},
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        (os.path.join('share', package_name, 'launch'), glob('launch/*.launch.py')),
        (os.path.join('share', package_name, 'config'),
         glob('config/*.yaml') + glob('config/*.xml')),
        (os.path.join('share', package_name, 'rviz'), glob('rviz/*.rviz')),
    ],
    install_requires=['setuptools', 'numpy'],
    zip_safe=True,
    maintainer='mask2former_ros maintainers',
    maintainer_email='maintainers@mask2former-ros.invalid',
    description='Mask2Former semantic segmentation for ROS 2 camera topics.',
    license='Apache-2.0',
    # pytest below 9.1: launch_testing's pytest plugin fails to load on 9.1+ (see README).
    extras_require={'test': ['pytest>=7,<9.1', 'psutil', 'pyyaml'], 'ray': ['ray>=2.9']},
    entry_points={
        'console_scripts': [
            'segmentation_node = mask2former_ros.ros.node:main',
            'segment_bag = mask2former_ros.offline.cli:main',
            'mask2former_export = mask2former_ros.core.backends.onnx_export:main',
        ],
    },
)
