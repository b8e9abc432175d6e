"""SST-2 stacked BiLSTM: the reference Keras notebook workflow in PyTorch Lightning."""
