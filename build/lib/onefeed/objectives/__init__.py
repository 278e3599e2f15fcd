"""Loss functions of logits and targets."""
