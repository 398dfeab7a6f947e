"""The run layer: what every binary needs to turn a config into a run.

Below training, evaluation, export and retrieval, above models and data:
runtime set-up (`runtime`), the model of a config (`models`), its input
pipelines (`inputs`), a run folder's checkpoints, best-N keeper and history
(`checkpoints`), warm starting and BN re-estimation (`warm_start`), and where
a trained model comes from (`loading`: a run folder or a preset + weights).
"""
