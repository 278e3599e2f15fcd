"""The one training loop (``loop.fit``) over the ``Task`` protocol (``task.Task``), its
settings (``config.TrainConfig``), and the tasks with their run configs: ``rec.RecTask`` (NRIP
only, the generative core), ``joint.JointTask`` (NRIP + NSIP + NSQP + DESC2ID + ID2DESC,
GenSAR §3.3) and UniSearch's pre-training (``unisearch.train_unisearch``). Checkpoint format
and commit: ``onefeed.checkpoint``.
"""
