"""poselab.models"""
