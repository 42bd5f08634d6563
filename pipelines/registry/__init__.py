"""Registered models: the one registration path, the promotion gate, model cards, served (pyfunc) and ONNX models,
and predicting with them."""
