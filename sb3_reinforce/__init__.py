"""REINFORCE / vanilla policy gradient for Stable-Baselines3."""

import os

from sb3_reinforce.reinforce import REINFORCE
from sb3_reinforce.reinforce_mask import MaskableREINFORCE

# Read version from file
version_file = os.path.join(os.path.dirname(__file__), "version.txt")
with open(version_file) as file_handler:
    __version__ = file_handler.read().strip()

__all__ = ["REINFORCE", "MaskableREINFORCE", "__version__"]
