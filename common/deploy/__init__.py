"""From a checkpoint to users: ONNX export, its reader, the server and its page, console output. Everything here
but export.py runs without torch."""
