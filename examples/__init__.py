"""Worked examples of workflows of one's own on common/ (docs/from_keras.md)."""
