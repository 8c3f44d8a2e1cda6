"""Recipes of the rspose chapter (registered on import of poselab.experiments)."""
