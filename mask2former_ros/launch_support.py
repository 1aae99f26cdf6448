"""
Helpers shared by the package's launch files: share directory, boolean arguments, DDS profile.

No ``launch`` imports, so the launch files stay thin and this module is testable anywhere;
``ament_index_python`` is imported only when the share directory is looked up.
"""

import os
from pathlib import Path

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
