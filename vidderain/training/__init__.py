"""Training RRANet: recipes, the step, batches drawn ahead, validation and the run that joins them.

``pipelines/train.py`` is the command line over this package; other scripts (``bench_train.py``,
``gpu_kit.py``, ``evaluate.py``) and the tests import it from here.
"""

from vidderain.training.config import TRAIN_DEFAULTS, TrainConfig, load_train_config
from vidderain.training.prefetch import Prefetcher, to_tensor
from vidderain.training.step import (
    TrainingStep,
    initial_model,
    load_teacher,
    moving_average,
    training_precision,
)
from vidderain.training.trainer import Limits, Trainer
from vidderain.training.validation import Validation, print_validations, validate

__all__ = [
    "TRAIN_DEFAULTS",
    "Limits",
    "Prefetcher",
    "TrainConfig",
    "Trainer",
    "TrainingStep",
    "Validation",
    "initial_model",
    "load_teacher",
    "load_train_config",
    "moving_average",
    "print_validations",
    "to_tensor",
    "training_precision",
    "validate",
]
