"""What the Fashion-MNIST and SST-2 workflows share: data location, batching, metrics, report and CLI."""
