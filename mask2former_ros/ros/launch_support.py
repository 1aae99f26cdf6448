"""
Helpers shared by the package's launch files: share directory, boolean arguments, DDS profile.

No ``launch`` imports, so the launch files stay thin and this module is testable anywhere;
``ament_index_python`` is imported only when the share directory is looked up.
"""

import os
from pathlib import Path
from typing import Any, Callable

PACKAGE = 'mask2former_ros'
PROFILE_VARIABLE = 'FASTDDS_DEFAULT_PROFILES_FILE'
LARGE_IMAGE_PROFILE = os.path.join('config', 'fastdds_large_images.xml')


def share_directory() -> str:
    """Return the package's share directory, or the source tree when it is not installed."""
    from ament_index_python.packages import get_package_share_directory, PackageNotFoundError
    try:
        return get_package_share_directory(PACKAGE)
    except PackageNotFoundError:
        return str(Path(__file__).resolve().parents[1])


def as_bool(name: str, text: str) -> bool:
    """Parse a boolean launch argument (true/false, 1/0, yes/no, on/off)."""
    value = text.strip().lower()
    if value in ('true', '1', 'yes', 'on'):
        return True
    if value in ('false', '0', 'no', 'off'):
        return False
    raise ValueError(f"launch argument {name}:='{text}' must be true or false")


def large_image_env(enabled: bool) -> tuple[dict[str, str], str | None]:
    """
    Return the environment that selects the shipped large-image Fast DDS profile.

    The second item is a note to log when the profile was asked for but is missing (the
    default DDS transports are used then), else None.
    """
    if not enabled:
        return {}, None
    profile = os.path.join(share_directory(), LARGE_IMAGE_PROFILE)
    if not os.path.isfile(profile):
        return {}, f'large_image_profile: {profile} not found; using the default DDS transports'
    return {PROFILE_VARIABLE: profile}, None


def input_remappings(prefix: str, target: str) -> list[tuple[str, str]]:
    """Remap ``<prefix>image`` and ``<prefix>image/compressed`` to ``target`` (+/compressed)."""
    return [(f'{prefix}image', target), (f'{prefix}image/compressed', f'{target}/compressed')]


def node_parameters(arg: Callable[[str], str]) -> tuple[list[str], dict[str, Any]]:
    """
    Return the node's parameter file (checked to exist; none if empty) and the overrides.

    ``arg`` evaluates a launch argument. Parameters given later take precedence, so the
    overrides go after the file; model and device are only overridden when given, so that the
    file's values apply otherwise. ``ParameterValue(..., value_type=str)`` keeps e.g. a model
    directory named '2024' a string.
    """
    from launch_ros.parameter_descriptions import ParameterValue
    params_file = os.path.expanduser(arg('params_file'))
    if params_file and not os.path.isfile(params_file):
        raise FileNotFoundError(f"launch argument params_file:='{params_file}' does not exist")
    overrides: dict[str, Any] = {
        'image_transport': ParameterValue(arg('image_transport'), value_type=str),
        'use_sim_time': as_bool('use_sim_time', arg('use_sim_time')),
    }
    for name in ('model', 'device'):
        if arg(name):
            overrides[name] = ParameterValue(arg(name), value_type=str)
    return ([params_file] if params_file else []), overrides
