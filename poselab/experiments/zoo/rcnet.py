"""Recipes of the rcnet chapter (registered on import of poselab.experiments)."""
