"""Schemathesis hooks: SigV4-sign every request to the API as API Gateway's IAM
authorisation expects (service execute-api), from the emulator's test credentials.

Schemathesis sets the `sigv4` security scheme's header (docs/api/openapi.yaml) to a
placeholder through an auth provider, so it knows the request carries credentials; the
requests-level auth below replaces the placeholder with the signature of the request as
sent (method, URL, body). Its `ignored_auth` probes leave the header out or set another
value: those go unsigned, and the API must refuse them."""
import os

import schemathesis
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

PLACEHOLDER = "SigV4, signed as sent"
CREDENTIALS = Credentials(os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
                          os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"))
REGION = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")


@schemathesis.auth()
class Placeholder:
    def get(self, case, ctx):
        return PLACEHOLDER

    def set(self, case, data, ctx):
        case.headers = {**(case.headers or {}), "Authorization": data}


class SignAsSent:
    """A requests auth: signs the prepared request when it carries the placeholder."""

    def __call__(self, prepared):
        if prepared.headers.get("Authorization") != PLACEHOLDER:
            return prepared
        del prepared.headers["Authorization"]
        body = prepared.body or b""
        if isinstance(body, str):
            body = body.encode()
        request = AWSRequest(method=prepared.method, url=prepared.url, data=body,
                             headers={k: v for k, v in prepared.headers.items() if k.lower() == "content-type"})
        SigV4Auth(CREDENTIALS, "execute-api", REGION).add_auth(request)
        for name in ("Authorization", "X-Amz-Date", "X-Amz-Security-Token"):
            if name in request.headers:
                prepared.headers[name] = request.headers[name]
        return prepared


@schemathesis.hook
def before_call(context, case, kwargs):
    kwargs["auth"] = SignAsSent()
