"""Recipes of the sar chapter (registered on import of poselab.experiments)."""
