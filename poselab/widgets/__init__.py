"""poselab.widgets"""
