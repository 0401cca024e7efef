"""Training, evaluation, prediction and score fusion: the stages that run models."""
