"""poselab.losses"""
from .transport import emd_loss
