"""poselab.models — tiny CPU backbone, ResNet-18 SimpleBaseline, and the four heads.

    from poselab.models import build_model
    model = build_model(head="heatmap", input_size=(64, 48), backbone="tiny")
"""
from .backbones import BasicBlock, ResNet18Backbone, TinyBackbone
from .heads import HeatmapHead, SARHead, SimCCHead
from .pose_model import BACKBONES, DEFAULT_HEATMAP_STRIDE, HEADS, PoseModel, build_model, count_parameters
from .rcnet import POSE_FEATURES, RCNet, ScoreNet, pose_features

__all__ = ["build_model", "PoseModel", "count_parameters", "HEADS", "BACKBONES", "DEFAULT_HEATMAP_STRIDE",
           "TinyBackbone", "ResNet18Backbone", "BasicBlock", "HeatmapHead", "SimCCHead", "SARHead",
           "RCNet", "ScoreNet", "pose_features", "POSE_FEATURES"]
