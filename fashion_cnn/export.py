"""Export a Fashion-MNIST checkpoint to ONNX, for prediction and serving without torch.

fashion-cnn-export --ckpt runs/fashion_cnn/version_0/checkpoints/last.ckpt --output exported/
fashion-cnn-export --ckpt run1.ckpt --ckpt run2.ckpt --output exported/   # one model of their ensemble
fashion-cnn-predict --model exported/ shirt.png
"""

import torch

from common.deploy.export import export_command
from fashion_cnn.model import FashionCNN


def example(model: FashionCNN) -> torch.Tensor:
    """Images of the model's input shape (its classes and input are in its metadata: export_metadata)."""
    shape = model.data_hparams()
    size = (2, shape["in_channels"], shape["image_size"], shape["image_size"])
    return torch.rand(size, generator=torch.Generator().manual_seed(0))  # the caller's generator untouched


def main(args: list[str] | None = None) -> None:
    metadata = {"workflow": "fashion_cnn"}
    export_command(args, workflow="fashion_cnn", model_class=FashionCNN, example=example, metadata=metadata)


if __name__ == "__main__":
    main()
