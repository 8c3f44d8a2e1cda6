"""poselab — a teaching lab that replays five papers on human pose estimation losses.

Layers (each imports only the ones above it): skeleton, data, codecs, models, losses,
metrics, train, analysis, viz, widgets; claims and cli sit beside them.
"""
__version__ = "0.1.0"
