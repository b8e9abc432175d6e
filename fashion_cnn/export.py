"""Export a Fashion-MNIST checkpoint to ONNX, for prediction and serving without torch.

fashion-cnn-export --ckpt runs/fashion_cnn/version_0/checkpoints/last.ckpt --output exported/
fashion-cnn-export --ckpt run1.ckpt --ckpt run2.ckpt --output exported/   # one model of their ensemble
fashion-cnn-predict --model exported/ shirt.png
"""

import torch

from common.deploy.export import class_metadata, export_command
from fashion_cnn.data import CLASS_NAMES
from fashion_cnn.model import FashionCNN


def main(args: list[str] | None = None) -> None:
    example = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))  # the caller's generator untouched
    metadata = class_metadata("fashion_cnn", CLASS_NAMES)
    export_command(args, workflow="fashion_cnn", model_class=FashionCNN, example=example, metadata=metadata)


if __name__ == "__main__":
    main()
