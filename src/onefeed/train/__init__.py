"""The one training loop (``loop.fit``) over the ``Task`` protocol (``task.Task``).

Concrete tasks sit beside their run configs: ``onefeed.training.RecTask`` (NRIP only, the
generative core) and ``onefeed.training_joint.JointTask`` (NRIP + NSIP + NSQP + DESC2ID +
ID2DESC, GenSAR §3.3).
"""
