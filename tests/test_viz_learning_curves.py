"""The arena's learning-curve figure (chapter 07) says when there is nothing to draw."""
from poselab.train import History
from poselab.viz.experiments import learning_curves_figure


def test_learning_curves_figure_without_validations_says_so():
    fig = learning_curves_figure({"mse": History(), "emd": History()})
    assert not fig.data and any("no run validated AP" in a.text for a in fig.layout.annotations)  # was blank axes
    assert fig.layout.title.text == "validation AP against training seconds"
