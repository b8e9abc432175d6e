"""Fashion-MNIST CNN: the reference Keras notebook workflow in PyTorch Lightning."""
