"""Running and quantizing exported graphs (ONNX Runtime, OpenVINO)."""
