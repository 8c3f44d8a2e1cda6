"""poselab.losses"""
