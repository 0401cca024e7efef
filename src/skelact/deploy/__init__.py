"""Running trained models outside the training framework: ONNX export, a torch-free runtime,
and a sliding-window stream predictor.

Import discipline (why it matters): :mod:`skelact.deploy.runtime`, :mod:`.metadata` and
:mod:`.stream` never import torch, so a deployment needs only NumPy and ONNX Runtime;
:mod:`.export` and :mod:`.torch_backend` are the torch side. This package file imports nothing.
"""
