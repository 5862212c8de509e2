"""docs/api/openapi.yaml is a valid OpenAPI 3.1 document and its examples are
valid instances of their schemas (the Rust test api::tests::the_openapi_document_
lists_exactly_the_served_routes checks its routes against the function's)."""
import os

import jsonschema
import pytest
import yaml
from openapi_spec_validator import validate

DOCUMENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "openapi.yaml")


def load():
    with open(DOCUMENT) as f:
        return yaml.safe_load(f)


def validator(document, schema):
    """A JSON Schema 2020-12 validator of `schema`, resolving #/components/... in the document."""
    return jsonschema.Draft202012Validator({**schema, "components": document["components"]},
                                           format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def resolve(document, node):
    while isinstance(node, dict) and "$ref" in node and len(node) == 1:
        target = document
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


def examples(document):
    """(where, schema, example) for every media-type and parameter example."""
    found = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or method == "parameters":
                continue
            bodies = [("request", operation.get("requestBody"))]
            bodies += [(status, answer) for status, answer in operation.get("responses", {}).items()]
            for where, body in bodies:
                body = resolve(document, body)
                for media in (body or {}).get("content", {}).values():
                    if "example" in media:
                        found.append((f"{method.upper()} {path} {where}", media["schema"], media["example"]))
    for name, parameter in document["components"]["parameters"].items():
        if "example" in parameter:
            found.append((f"parameter {name}", parameter["schema"], parameter["example"]))
    return found


def test_the_document_is_valid_openapi_3_1():
    document = load()
    assert document["openapi"].startswith("3.1")
    validate(document)


@pytest.mark.parametrize("where, schema, example", examples(load()), ids=lambda v: v if isinstance(v, str) else "")
def test_every_example_is_valid_against_its_schema(where, schema, example):
    validator(load(), schema).validate(example)


def test_the_examples_cover_every_operation():
    document = load()
    covered = {where.rsplit(" ", 1)[0] for where, _, _ in examples(document) if not where.startswith("parameter")}
    operations = {f"{m.upper()} {p}" for p, item in document["paths"].items() for m in item if m != "parameters"}
    assert operations == covered


def test_a_wrong_body_is_refused_by_the_schemas():
    document = load()
    request = resolve(document, {"$ref": "#/components/schemas/RegisterRequest"})
    with pytest.raises(jsonschema.ValidationError):
        validator(document, request).validate({"version": "v1", "spec": "x", "sepc": 1})


def test_every_operation_documents_what_api_gateway_answers_itself():
    """API Gateway answers 403 (unsigned, bad signature, denied by policy), 429
    (throttled), 502 and 504 before or around the functions, on every route."""
    document = load()
    missing = [f"{method.upper()} {path}: {code}" for path, item in document["paths"].items()
               for method, operation in item.items() if method != "parameters"
               for code in ("403", "429", "502", "504") if code not in operation["responses"]]
    assert missing == []
