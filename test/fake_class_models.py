"""`python:` backends with ``class_names`` (tests of the class mapping, evs_ros/data/classes.py).

Each callable returns float32 (C, H/4, W/4) one-hot probabilities of one fixed network channel.
"""

import numpy as np

from evs_ros.data.labels import CLASS_NAMES

# The Cityscapes names in a scrambled order and spelling, as another training codebase may list.
SHUFFLED_CITYSCAPES = tuple(name.replace(' ', '_').title() for name in
                            CLASS_NAMES[10:] + CLASS_NAMES[:10])


class OneClass:
    """Predicts network channel ``index`` of ``class_names`` everywhere."""

    def __init__(self, class_names, index):
        self.class_names = tuple(class_names)
        self.num_classes = len(class_names)
        self.index = index

    def __call__(self, image_bgr: np.ndarray) -> np.ndarray:
        height, width = (image_bgr.shape[0] + 3) // 4, (image_bgr.shape[1] + 3) // 4
        probs = np.full((self.num_classes, height, width), 0.1 / self.num_classes, np.float32)
        probs[self.index] += 0.9
        return probs


def make_shuffled_car():
    """Return a Cityscapes network listing its classes in another order; always says 'Car'."""
    return OneClass(SHUFFLED_CITYSCAPES, SHUFFLED_CITYSCAPES.index('Car'))


def make_warehouse_robot():
    """Return a non-Cityscapes network (3 classes); always says 'robot'."""
    return OneClass(('floor', 'shelf', 'robot'), 2)


def make_wrong_names():
    """class_names that do not match num_classes."""
    model = OneClass(('floor', 'shelf', 'robot'), 0)
    model.num_classes = 4
    return model
