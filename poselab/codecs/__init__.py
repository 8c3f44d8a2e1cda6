"""poselab.codecs"""
from .hdm import subpixel_demanders, decode_four_pixel
