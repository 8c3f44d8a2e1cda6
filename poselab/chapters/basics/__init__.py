"""Chapter 00: COCO keypoints, heatmaps, OKS and AP (analysis, widgets; figures in poselab.viz.poses)."""
from poselab.chapters.registry import Chapter, register

CHAPTER = register(Chapter(
    number=0, name="basics", stem="00_basics",
    title="COCO keypoint evaluation",
    expected_claims={"basics.ap.ground_truth_scores_one", "basics.oks.matches_pycocotools",
                     "basics.synth.deterministic"},
    package=__name__))
