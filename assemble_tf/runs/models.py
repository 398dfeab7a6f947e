"""The model of a run: the preset with the config's overrides.

Lee et al. 2020 (https://arxiv.org/abs/2001.06268): the presets are the
paper's networks (`assemble_tf.presets`); a run's config.json adds the class
count and architecture overrides.
"""

from assemble_tf.models import build_model

# Layers of the classification / embedding head (everything else is the
# backbone for freeze_backbone and backbone_lr_multiplier).
HEAD_PREFIXES = ("head_", "logits")
# Layers re-initialised by a warm start without the head: the classifier
# and the embedding head (its projection and that projection's BN).
REINIT_LAYERS = ("head_dense", "head_embedding", "head_embedding_bn")


def is_head_variable(variable):
    return variable.path.startswith(HEAD_PREFIXES)


def build_run_model(config, image_size=None, **extra):
    """The preset's model with the run's overrides (and `extra` ones)."""
    return build_model(
        config.model.preset,
        **config.model.build_overrides(config.data.num_classes, image_size),
        **extra,
    )
