"""poselab.analysis"""
