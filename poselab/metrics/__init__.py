"""poselab.metrics"""
