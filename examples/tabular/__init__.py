"""A workflow of one's own on ``common/``: a small MLP on a CSV table (docs/from_keras.md, section 3)."""
