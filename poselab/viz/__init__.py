"""poselab.viz"""
