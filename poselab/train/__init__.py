"""poselab.train"""
