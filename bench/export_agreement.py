"""How closely an ONNX export agrees with its checkpoint, on the whole test split of each dataset: the largest
absolute difference of the class probabilities, and the share of samples whose predicted class is the same.

    DATA_DIR=~/datasets python bench/export_agreement.py \\
        --fashion-ckpt runs/fashion_cnn/version_0/checkpoints/last.ckpt \\
        --sst2-ckpt runs/sst2_bilstm/version_0/checkpoints/last.ckpt

Each checkpoint is exported with the export command into a temporary folder, then both are read with the
predictors' ``load`` (torch for the checkpoint, onnxruntime for the export). Prints a table and writes JSON.
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np
from bench_io import write_result

from fashion_cnn import export as fashion_export
from fashion_cnn import predict as fashion_predict
from fashion_cnn.data import FashionMNISTDataModule
from sst2_bilstm import export as sst2_export
from sst2_bilstm import predict as sst2_predict
from sst2_bilstm.data import SST2DataModule
from sst2_bilstm.tokenizer import encode


def agreement(torch_p: np.ndarray, onnx_p: np.ndarray) -> dict:
    return {
        "samples": len(torch_p),
        "max_abs_difference": float(np.abs(torch_p - onnx_p).max()),
        "same_class": float((torch_p.argmax(axis=1) == onnx_p.argmax(axis=1)).mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fashion-ckpt", required=True)
    parser.add_argument("--sst2-ckpt", required=True)
    parser.add_argument("--output", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    result = {}
    with tempfile.TemporaryDirectory() as folder:
        exported = Path(folder) / "fashion"
        fashion_export.main(["--ckpt", args.fashion_ckpt, "--output", str(exported)])
        data = FashionMNISTDataModule()
        data.prepare_data()
        data.setup("test")
        images = data.test_set[0].numpy()
        torch_p = fashion_predict.load(args.fashion_ckpt).probabilities(images)
        result["fashion_cnn"] = agreement(torch_p, fashion_predict.load(exported).probabilities(images))

        exported = Path(folder) / "sst2"
        sst2_export.main(["--ckpt", args.sst2_ckpt, "--output", str(exported)])
        data = SST2DataModule()
        data.setup("test")
        checkpoint = sst2_predict.load(args.sst2_ckpt)
        tokens = encode(checkpoint.tokenizer, data.texts["test"][0])  # as the checkpoint's tokenizer reads them
        torch_positive = checkpoint.probabilities(tokens)
        onnx_positive = sst2_predict.load(exported).probabilities(tokens)
        two = [np.stack([1 - p, p], axis=1) for p in (torch_positive, onnx_positive)]
        result["sst2_bilstm"] = agreement(*two)
    print("| workflow | test samples | largest difference of a probability | same predicted class |")
    print("|---|---:|---:|---:|")
    for name, figures in result.items():
        print(
            f"| {name} | {figures['samples']:,} | {figures['max_abs_difference']:.2e} | {100 * figures['same_class']:.2f}% |"
        )
    write_result(result, args.output, "export_agreement")


if __name__ == "__main__":
    main()
