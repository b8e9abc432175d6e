"""The server's contract: what a request may be, checked as its JSON is read (before it joins a batch), and what
every answer is, as ``/openapi.json`` describes it. A refusal is a 4xx status and ``{"detail": "one line"}``."""

from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic_core import PydanticCustomError

MAX_INPUTS = 1000  # per request: more is refused (413), so that one request cannot hold the others for long
MAX_BODY = 5 * 1024 * 1024  # bytes
# LitServe's own: where it is set, every endpoint but the page asks for it in the X-API-Key header.
API_KEY_VARIABLE = "LIT_SERVER_API_KEY"
TOO_LARGE = "too_large"  # the type of a validation error answered 413 instead of 422


def refuse(message: str) -> PydanticCustomError:
    """A request's refusal, raised while its JSON is validated: 422 with ``message`` as the detail."""
    return PydanticCustomError("refused", message)


def too_large(message: str) -> PydanticCustomError:
    """As ``refuse``, answered 413: the request is over a stated limit."""
    return PydanticCustomError(TOO_LARGE, message)


def json_kind(value: Any) -> str:
    """What a JSON value is, in a message's words."""
    if value is None:
        return "null"
    for kind, name in ((bool, "a boolean"), (str, "a string"), (dict, "an object"), (list, "a list")):
        if isinstance(value, kind):
            return name
    return "a number" if isinstance(value, int | float) else type(value).__name__


def checked_inputs(value: Any, check: Callable[[Any, int], Any], one: str) -> list:
    """``inputs`` as a list (a single input is a list of one), each item as ``check(item, index)`` returns it."""
    if isinstance(value, str):
        return [check(value, 0)]
    if not isinstance(value, list):
        raise refuse(f"inputs is {json_kind(value)}: give {one}, or a list of them.")
    if not value:
        raise refuse("inputs is empty: give one input or more.")
    if len(value) > MAX_INPUTS:
        raise too_large(f"{len(value)} inputs in one request; at most {MAX_INPUTS}.")
    return [check(item, i) for i, item in enumerate(value)]


def inputs_schema(single: dict, item: dict, description: str) -> dict:
    """The JSON schema of ``inputs``: a single input, or a list of 1 to MAX_INPUTS items."""
    listed = {"type": "array", "items": item, "minItems": 1, "maxItems": MAX_INPUTS}
    return {"description": f"{description}; at most {MAX_INPUTS} a request", "anyOf": [single, listed]}


async def one_line_validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type and media_type != "application/json" and not media_type.endswith("+json"):  # none: read as JSON
        return JSONResponse({"detail": "send the body as JSON, with Content-Type: application/json."}, status_code=415)
    problem = error.errors()[0] if error.errors() else {}
    kind, where = problem.get("type"), [str(part) for part in problem.get("loc", ()) if part != "body"]
    if kind == "json_invalid":
        return JSONResponse({"detail": "the body is not valid JSON."}, status_code=400)
    if kind in (TOO_LARGE, "refused"):  # our own messages name what they refuse
        return JSONResponse({"detail": problem["msg"]}, status_code=413 if kind == TOO_LARGE else 422)
    if not where:
        message = f'the body must be a JSON object with "inputs", not {json_kind(problem.get("input"))}.'
    else:
        message = f"{'.'.join(where)}: {problem.get('msg', 'invalid')}"
    return JSONResponse({"detail": message}, status_code=422)


def openapi(app, generated: Callable, class_names: list[str], keyed: bool) -> dict:
    """FastAPI's schema of the routes, with the answers it cannot see: every status ``/predict`` gives and its
    body, and the media types of the other endpoints."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = generated()
    problem = {"$ref": "#/components/schemas/Problem"}
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    schemas["Problem"] = {
        "type": "object",
        "properties": {"detail": {"type": "string", "description": "what is wrong, in one line"}},
        "required": ["detail"],
    }
    schemas["Predictions"] = {
        "type": "object",
        "properties": {
            "predictions": {
                "type": "array",
                "description": "one per input, in order",
                "items": {
                    "type": "object",
                    "properties": {
                        "label": {"type": "string", "enum": list(class_names)},
                        "probabilities": {
                            "type": "object",
                            "properties": {
                                name: {"type": "number", "minimum": 0, "maximum": 1} for name in class_names
                            },
                            "required": list(class_names),
                            "additionalProperties": False,
                        },
                        "note": {"type": "string", "description": "what was done to read the input, or empty"},
                    },
                    "required": ["label", "probabilities", "note"],
                },
            }
        },
        "required": ["predictions"],
    }

    def answer(description: str, media: str = "application/json", body: dict = problem) -> dict:
        return {"description": description, "content": {media: {"schema": body}}}

    locked = {"401": answer(f"no X-API-Key header, or a wrong one (the server's {API_KEY_VARIABLE})")} if keyed else {}
    paths = schema["paths"]
    paths["/predict"]["post"]["responses"] = {
        "200": answer("the predictions", body={"$ref": "#/components/schemas/Predictions"}),
        "400": answer("the body is not valid JSON, or not UTF-8"),
        **locked,
        "413": answer(f"over a stated limit: {MAX_BODY:,} bytes, {MAX_INPUTS} inputs, and the input's own (/info)"),
        "415": answer("the body was not sent as application/json"),
        "422": answer("an input that cannot be read, or a request of the wrong shape"),
        "504": answer("the request waited longer than the server's timeout for the model"),
    }
    text = {"type": "string"}
    paths["/health"]["get"]["responses"] = {
        "200": answer("the model is loaded", "text/plain", {"type": "string", "enum": ["ok"]}),
        **locked,
        "503": answer("the model is not loaded yet", "text/plain", {"type": "string", "enum": ["not ready"]}),
    }
    paths["/info"]["get"]["responses"] = {
        "200": answer(
            "the workflow, its classes and limits, and LitServe's settings",
            body={"type": "object", "properties": {"model": {"type": "object"}, "server": {"type": "object"}}},
        ),
        **locked,
    }
    paths["/"]["get"]["responses"] = {"200": answer("a page to try the model", "text/html", text)}
    return schema
