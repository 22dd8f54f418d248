"""The most a Refiner could recover: the network itself as "Refiner" (issue 17, section 12b).

``python scripts/refiner_bound.py BACKEND DATA WxH OUT.json`` evaluates EVS02/EVS03/EVS06/EVS07
with P_refiner replaced by the network's own prediction on the current frame, blended into IAM's
mask by eq. 4 as a real Refiner is: the figure a perfect Refiner (one that always agreed with
the per-frame network) would reach with these IAM settings. DATA as ``evs eval --data``
(``clips:`` scores agreement with per-frame labels).
"""

import json
import sys

import torch

from evs_ros.config import EvsConfig, operating_point
from evs_ros.evaluation import evaluate, model_class_names
from evs_ros.evaluation.snippets import scoring_for, snippet_source, with_perframe_labels
from evs_ros.models.backends import load_backend


class NetworkInMask:
    """A Refiner stand-in that answers with the network's own probabilities."""

    def __init__(self, model):
        self.model, self.num_classes = model, model.num_classes
        self.feature_channels, self.class_names = 0, model.class_names

    def refine(self, image, probs_warped, features):
        return self.model.predict(image).probs


def main(backend, data, size, out_path):
    torch.set_num_threads(2)
    model = load_backend(backend, 'cpu')
    width, height = (int(value) for value in size.split('x'))
    snippets, _, described = snippet_source(data, 'val', 0, 0, None, (width, height))
    if described['kind'] == 'clips':
        snippets = with_perframe_labels(snippets, model)
    ops = [operating_point(name) for name in ('EVS02', 'EVS03', 'EVS06', 'EVS07')]
    report = evaluate(snippets, model, NetworkInMask(model), ops, EvsConfig(),
                      scoring=scoring_for(described['kind'], model_class_names(model)))
    with open(out_path, 'w') as stream:
        json.dump(report, stream, default=str, indent=1)
    for entry in report['operating_points']:
        print(entry['name'], round(100 * entry['miou'], 2),
              round(100 * entry['pixel_accuracy'], 2))
    return 0


if __name__ == '__main__':
    sys.exit(main(*sys.argv[1:]))
