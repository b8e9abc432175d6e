"""What every benchmark does with its figures once printed: keep them as JSON in the output folder."""

import json
from pathlib import Path


def write_result(result: dict, output: Path, name: str) -> None:
    output.mkdir(parents=True, exist_ok=True)
    path = output / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written {path}")
