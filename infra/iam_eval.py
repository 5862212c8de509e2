"""A small, strict evaluator of IAM identity policies, for tests that ask "may this
principal call this action on this resource?" without an AWS account.

It follows IAM's evaluation logic for identity policies and permissions boundaries:
an explicit Deny wins, otherwise some Allow must match, and with a boundary both the
identity policies and the boundary must allow. Action names match case-insensitively,
resources case-sensitively, `*` and `?` as IAM's wildcards (`*` spans `/`). Conditions
are evaluated for the operators these policies use (String*, Arn*), against the
request context given; an operator it does not know raises, so a policy it cannot
judge never passes silently.
"""
import fnmatch
import re


def _as_list(value):
    return value if isinstance(value, list) else [value]


def _wildcard(pattern, value, case_sensitive=True):
    # fnmatch's [..] classes do not exist in IAM: escape them.
    regex = fnmatch.translate(pattern.replace("[", "\0").replace("]", "\1"))
    regex = regex.replace("\0", r"\[").replace("\1", r"\]")
    return re.match(regex, value, 0 if case_sensitive else re.IGNORECASE) is not None


_OPERATORS = {
    "StringEquals": lambda want, got: got == want,
    "StringLike": lambda want, got: _wildcard(want, got),
    "StringNotEquals": lambda want, got: got != want,
    "ArnEquals": lambda want, got: got == want,
    "ArnLike": lambda want, got: _wildcard(want, got),
}


def _condition_holds(condition, context):
    for operator, tests in (condition or {}).items():
        if operator not in _OPERATORS:
            raise ValueError(f"condition operator {operator} is not supported by this evaluator")
        for key, wanted in tests.items():
            got = context.get(key)
            if got is None:
                return False
            if not any(_OPERATORS[operator](w, g) for w in _as_list(wanted) for g in _as_list(got)):
                return False
    return True


def _matches(statement, action, resource, context):
    if "Action" in statement:
        if not any(_wildcard(a, action, case_sensitive=False) for a in _as_list(statement["Action"])):
            return False
    elif "NotAction" in statement:
        if any(_wildcard(a, action, case_sensitive=False) for a in _as_list(statement["NotAction"])):
            return False
    if "Resource" in statement:
        if not any(_wildcard(r, resource) for r in _as_list(statement["Resource"])):
            return False
    elif "NotResource" in statement:
        if any(_wildcard(r, resource) for r in _as_list(statement["NotResource"])):
            return False
    return _condition_holds(statement.get("Condition"), context)


def decision(policies, action, resource, context=None):
    """'Deny' (explicit), 'Allow', or 'ImplicitDeny' for one request under some policy documents."""
    context = context or {}
    allowed = False
    for policy in policies:
        for statement in _as_list(policy.get("Statement", [])):
            if not _matches(statement, action, resource, context):
                continue
            if statement.get("Effect") == "Deny":
                return "Deny"
            allowed = allowed or statement.get("Effect") == "Allow"
    return "Allow" if allowed else "ImplicitDeny"


def allowed(policies, action, resource, context=None, boundary=None):
    """Whether identity `policies` (capped by a permissions `boundary`, if any) allow the request."""
    if decision(policies, action, resource, context) != "Allow":
        return False
    return boundary is None or decision([boundary], action, resource, context) == "Allow"
