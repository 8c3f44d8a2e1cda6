"""poselab.losses — one module per family; every loss is ``(prediction, target, weights, **hyper)``.

Baselines: :func:`heatmap_mse_loss` (detection MSE), :func:`simcc_kl_loss` (SimCC KL),
HDM's :func:`emd_loss` / :class:`EmdLoss` (entropic EMD to the dot, Eqs. 2-5),
:func:`integral_l1_loss` (integral regression L1 + BCIR prior term, with :func:`step_schedule`).

Unlabelled joints: a loss whose target is keypoint coordinates (``integral_l1_loss``,
``bcir_loss``, ``sar_loss``, the Instance-Sort losses, ``emd_loss``) accepts NaN there for a joint
whose weight / visibility is 0, and ignores it; a NaN keypoint of a labelled joint is refused
(``emd_loss`` skips it, as documented). Heatmap and SimCC label targets must be finite everywhere.
"""
from .heatmap import HeatmapMSELoss, heatmap_mse_loss
from .integral import IntegralL1Loss, integral_l1_loss, soft_argmax_2d, step_schedule
from .integral import BCIRLoss, bcir_loss, laplacian_shrinkage_regularizer
from .simcc import SimCCKLLoss, simcc_kl_loss
from .transport import EmdLoss, emd_loss
from .sar import (SARLoss, sar_auxiliary_heatmap_loss, sar_log_weights, sar_loss, sar_multi_target_loss,
                  sar_quality)
from .confidence_ranking import (CONFIDENCE_RANKING_LOSSES, approx_ndcg_loss, ap_rank_loss,
                                 crps_rank_loss, dr_loss, gaussian_rank_loss, lambdarank_loss,
                                 laplacian_rank_loss, neural_ndcg_loss, ranknet_loss)
from .ranking import (InstanceSortLoss, RSPoseLoss, SimCCInstanceSortLoss, SpatialRankSortLoss,
                      instance_sort_loss, rspose_loss, simcc_instance_sort_loss, spatial_rank_loss,
                      spatial_rank_sort_loss, spatial_sort_loss)
