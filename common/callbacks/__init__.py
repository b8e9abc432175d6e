"""Lightning callbacks of both workflows: the report, the Keras-style curves, the prediction writer."""
