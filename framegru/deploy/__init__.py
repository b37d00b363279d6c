"""Deployment: exported graphs and the backends (PyTorch, ONNX Runtime) that run them."""
