"""poselab.codecs"""
