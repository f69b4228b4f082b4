"""Refuse credentials in a spec, before anything else reads it.

A spec is logged whole to MLflow (``spec.yaml`` and one param per setting) and copied with every
submitted job, so a password in it would reach everyone who can read the experiment. Refusing at
load is the guarantee: ``check_no_secrets`` walks the raw document (CLI overrides applied) before
any other check, so no later message ("unknown setting ...; did you mean", "unknown searcher
'...'") can echo the value, and its own messages name the path and the kind of secret, never the
secret itself.

Two signs: a key named like a credential (``password``, ``api_key``, ``aws_secret_access_key``,
anywhere, known key or not) and a value shaped like one (a URL with ``user:password@``, a cloud
or service token with a fixed prefix, a JWT, a PEM private key, ``Bearer <token>``). Both are
matched on whole words or fixed prefixes so that model names, paths and tracking URIs without
credentials (``resnet18``, ``sqlite:///mlflow.db``, ``http://127.0.0.1:5000``) pass.
"""

from __future__ import annotations

import re
from itertools import pairwise
from typing import Any

from ._errors import SpecError

# Words of a key (split at _ - . and camelCase) that name a credential. Whole words, so that a
# ``tokenizer`` or ``max_tokens`` key is not taken for a ``token``.
_KEY_WORDS = frozenset(
    {"password", "passwd", "passphrase", "secret", "token", "credential", "credentials", "apikey", "privatekey"}
)
# Pairs of consecutive words that name a credential: ``api_key``, ``accessKeyId``, ``private-key``.
_KEY_PAIRS = frozenset({("api", "key"), ("access", "key"), ("secret", "key"), ("private", "key"), ("auth", "key")})
# Query parameters of signed URLs (S3, GCS, Azure SAS) that carry a signature, besides the key words.
_SIGNED_QUERY = frozenset({"sig", "signature", "x_amz_signature", "x_amz_credential", "x_goog_signature"})

_URL_PASSWORD = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://[^/\s:@]*:[^/\s@]+@")
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s?#]*\?(?P<query>[^\s#]*)")
_QUERY_PARAM = re.compile(r"(?:^|[&;])(?P<name>[^=&;]+)=[^&;]+")
# Shapes of secrets with a fixed prefix; lengths are the real tokens' (or a little under), so a
# short word that happens to start the same way is not taken for one.
_VALUE_SHAPES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"), "an AWS access key id"),
    (re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})"), "a GitHub token"),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{20,}"), "an sk-... API key"),
    (re.compile(r"\bxox[baprs]-[A-Za-z0-9-]{10,}"), "a Slack token"),
    (re.compile(r"\bhf_[A-Za-z0-9]{30,}"), "a Hugging Face token"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}"), "a JWT"),
    (re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----"), "a PEM private key"),
    (re.compile(r"\b[Bb]earer\s+[A-Za-z0-9._~+/-]{16,}"), "a Bearer token"),
)

_ELSEWHERE = "a spec is logged to MLflow whole, so pass credentials through the environment instead"
_MLFLOW_LOGIN = "set MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD instead"


def _words(key: str) -> list[str]:
    """``awsSecretAccessKey`` / ``aws-secret_access.key`` -> ``[aws, secret, access, key]``."""
    snake = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", key).lower()
    return [word for word in re.split(r"[^a-z0-9]+", snake) if word]


def key_names_a_secret(key: str) -> bool:
    """Whether a mapping key (or a URL query parameter) is named like a credential."""
    words = _words(key)
    return any(w in _KEY_WORDS for w in words) or any(pair in _KEY_PAIRS for pair in pairwise(words))


def secret_in(text: str) -> tuple[str, str] | None:
    """``(what, hint)`` when ``text`` looks like it holds a credential, else None; never the secret."""
    url = _URL_PASSWORD.search(text)
    if url:
        web = url.group("scheme").lower() in ("http", "https")
        return "user:password@ in a URL", _MLFLOW_LOGIN if web else _ELSEWHERE
    for url_match in _URL.finditer(text):
        for param in _QUERY_PARAM.finditer(url_match.group("query")):
            name = param.group("name")
            if key_names_a_secret(name) or "_".join(_words(name)) in _SIGNED_QUERY:
                return f"{name}= in a URL's query", _ELSEWHERE
    for shape, what in _VALUE_SHAPES:
        if shape.search(text):
            return what, _ELSEWHERE
    return None


def _refuse(path: str, what: str, hint: str) -> SpecError:
    return SpecError(path, f"looks like it holds a credential ({what}); {hint}")


def check_no_secrets(doc: Any, path: str = "") -> None:
    """Refuse a spec document holding a key named like a credential or a value shaped like one.

    Raises:
        SpecError: naming the path (``tracking.uri``) and the kind of secret, without its value.
    """
    # YAML anchors can make a document recursive (``&a [*a]``) or exponentially wide when
    # expanded; each container is checked once, by identity.
    seen: set[int] = set()
    stack: list[tuple[str, Any]] = [(path, doc)]
    while stack:
        where, node = stack.pop()
        if isinstance(node, str):
            found = secret_in(node)
            if found:
                raise _refuse(where, *found)
            continue
        if not isinstance(node, (dict, list)) or id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, list):
            stack.extend((f"{where}[{i}]", item) for i, item in reversed(list(enumerate(node))))
            continue
        children = []
        for raw_key, value in node.items():
            key = str(raw_key)
            found = secret_in(key)
            if found:  # the key itself would be the secret: name only where it sits
                raise _refuse(where or "spec", f"{found[0]}, as a key", found[1])
            child = f"{where}.{key}" if where else key
            if key_names_a_secret(key):
                raise SpecError(child, f"a key named like a credential is not allowed; {_ELSEWHERE}")
            children.append((child, value))
        stack.extend(reversed(children))
