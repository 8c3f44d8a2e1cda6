"""poselab.chapters: one package per chapter."""
