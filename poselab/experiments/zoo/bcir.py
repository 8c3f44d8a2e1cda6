"""Recipes of the bcir chapter (registered on import of poselab.experiments)."""
