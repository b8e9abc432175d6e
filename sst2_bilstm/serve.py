"""Serve an SST-2 checkpoint, or its export, with LitServe (docs/serving.md).

    sst2-bilstm-serve --ckpt runs/sst2_bilstm/version_0/checkpoints/last.ckpt --port 8000
    sst2-bilstm-serve --model exported/ --port 8000          # onnxruntime, no torch
    curl -s localhost:8000/predict -d '{"inputs": ["a gorgeous film", "dull"]}'

An input is a sentence; ``inputs`` is one sentence or a list of them.
"""

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, PlainValidator, WithJsonSchema

from common.deploy.contract import checked_inputs, inputs_schema, json_kind, refuse, too_large
from common.deploy.serve import ClassifierAPI, Decoded, serve_command
from sst2_bilstm.predict import SentimentPredictor, load
from sst2_bilstm.tokenizer import unreadable

# The model reads a sentence's first 50 words (SST-2's longest has 52); these bound what a request costs to read.
MAX_SENTENCE = 10_000  # characters
MAX_CHARACTERS = 200_000  # in all the sentences of one request
SENTENCE = {"type": "string", "minLength": 1, "maxLength": MAX_SENTENCE, "pattern": r"\S"}


def checked_sentence(item: Any, i: int) -> str:
    if not isinstance(item, str):
        raise refuse(f"input {i} is {json_kind(item)}, not a sentence.")
    if not item.strip():
        raise refuse(f"input {i} is an empty sentence.")
    if len(item) > MAX_SENTENCE:
        raise too_large(f"input {i} is {len(item):,} characters; at most {MAX_SENTENCE:,} a sentence.")
    if problem := unreadable(item):
        raise refuse(f"input {i} is {problem}.")
    return item


def checked_sentences(value: Any) -> list[str]:
    sentences = checked_inputs(value, checked_sentence, "a sentence")
    if (total := sum(map(len, sentences))) > MAX_CHARACTERS:
        raise too_large(f"the sentences are {total:,} characters in all; at most {MAX_CHARACTERS:,} a request.")
    return sentences


class SentenceRequest(BaseModel):
    """The body of ``POST /predict``, checked as it is read: a bad request is refused before it joins a batch."""

    model_config = ConfigDict(strict=True)

    inputs: Annotated[
        list[str],
        PlainValidator(checked_sentences),
        WithJsonSchema(
            inputs_schema(SENTENCE, SENTENCE, f"a sentence, or a list of them ({MAX_CHARACTERS:,} characters in all)")
        ),
    ]


class SentimentAPI(ClassifierAPI):
    predictor: SentimentPredictor  # its tokenizer reads the sentences

    def decode_request(self, request: SentenceRequest):  # the annotation is the endpoint's body
        return super().decode_request(request)

    def decode(self, request: SentenceRequest) -> Decoded:
        return Decoded(*self.predictor.encoded(request.inputs))


def main(args: list[str] | None = None) -> None:
    limits = {"characters_per_sentence": MAX_SENTENCE, "characters_per_request": MAX_CHARACTERS}
    serve_command(args, workflow="sst2_bilstm", load=load, api_class=SentimentAPI, limits=limits)


if __name__ == "__main__":
    main()
