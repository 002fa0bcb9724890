"""Connecting to Kili, and turning what the `kili` SDK raises into one line a user can act on.

Before the SDK client is built, one plain HTTP request asks Kili who the key belongs to
(`{ viewer { id email } }`, the query the SDK itself checks keys with). It is sent once and
never retried, so a bad key or an unreachable endpoint is told at once: the SDK's GraphQL
client, by design, retries refused connections and 401s for up to two minutes, and skips its
own key check when KILI_SDK_SKIP_CHECKS is set.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import requests

from prelabel.errors import ConfigError, UploadError
from prelabel.extras import require

if TYPE_CHECKING:
    from kili.client import Kili

#: Kili's cloud, the SDK's default when KILI_API_ENDPOINT is not set.
DEFAULT_ENDPOINT = "https://cloud.kili-technology.com/api/label/v2/graphql"
PREFLIGHT_TIMEOUT = 20.0


def connect(api_key: str | None, endpoint: str | None) -> Kili:
    """A `kili` client for `endpoint`, once Kili has accepted the key and its license allows
    uploads; otherwise one clear error."""
    if not api_key:
        raise ConfigError(
            "KILI_API_KEY is not set: export the API key of your Kili account "
            "(Kili > My account > API keys)"
        )
    endpoint = endpoint or DEFAULT_ENDPOINT
    require("kili", "kili")
    email = _viewer_email(api_key, endpoint)

    from kili.client import Kili
    from kili.exceptions import AuthenticationFailed

    try:
        kili = Kili(api_key=api_key, api_endpoint=endpoint, disable_tqdm=True)
    except AuthenticationFailed:
        raise UploadError(_bad_key(endpoint, "the SDK's key check failed")) from None
    except requests.RequestException as exc:
        raise UploadError(_unreachable(endpoint, exc)) from None
    with sdk_errors(endpoint, "checking the organization's license"):
        orgs = kili.organizations(
            email=email, fields=["id", "license.uploadLocalData"], disable_tqdm=True
        )
    if not orgs or not (orgs[0].get("license") or {}).get("uploadLocalData"):
        raise UploadError(
            "the license of this Kili organization does not allow uploading local data "
            "(license.uploadLocalData is off), which importing texts needs: ask your Kili "
            "administrator to enable it"
        )
    return kili


def _viewer_email(api_key: str, endpoint: str) -> str:
    verify = os.environ.get("KILI_VERIFY", "true").lower() not in ("false", "0", "no")
    try:
        response = requests.post(
            endpoint,
            json={"query": "{ viewer { id email } }"},
            headers={"Authorization": f"X-API-Key: {api_key}", "Accept": "application/json"},
            timeout=PREFLIGHT_TIMEOUT,
            verify=verify,
        )
    except requests.RequestException as exc:
        raise UploadError(_unreachable(endpoint, exc)) from None
    if response.status_code in (401, 403):
        raise UploadError(_bad_key(endpoint, f"HTTP {response.status_code}"))
    try:
        answer: Any = response.json()
    except ValueError:
        answer = None
    viewer = ((answer or {}).get("data") or {}).get("viewer") if isinstance(answer, dict) else None
    if isinstance(viewer, dict) and viewer.get("id") and viewer.get("email"):
        return str(viewer["email"])
    errors = str((answer or {}).get("errors", "")).lower() if isinstance(answer, dict) else ""
    if response.status_code == 200 and any(w in errors for w in ("auth", "api key", "apikey")):
        raise UploadError(_bad_key(endpoint, "the key was not recognised"))
    raise UploadError(
        f"Kili at {endpoint} answered HTTP {response.status_code}, not like a Kili GraphQL "
        "endpoint: check KILI_API_ENDPOINT (it ends in /api/label/v2/graphql)"
    )


def _bad_key(endpoint: str, why: str) -> str:
    return (
        f"Kili at {endpoint} refused KILI_API_KEY ({why}): check the key "
        "(Kili > My account > API keys) and that it belongs to this Kili instance"
    )


def _unreachable(endpoint: str, exc: BaseException) -> str:
    kind = "did not answer in time" if isinstance(exc, requests.Timeout) else "cannot be reached"
    return (
        f"Kili at {endpoint} {kind} ({type(exc).__name__}): check KILI_API_ENDPOINT and the network"
    )


@contextmanager
def sdk_errors(endpoint: str, doing: str, resume_hint: str = "") -> Iterator[None]:
    """Turn the SDK's errors raised while `doing` into one UploadError line.

    `resume_hint` is added to errors that cut an upload off midway (how far it got, and that
    running the command again resumes it).
    """
    from gql.transport.exceptions import TransportServerError
    from kili.exceptions import GraphQLError, MutationOutcomeUnknownError, NotFound
    from kili.services.asset_import.exceptions import UploadFromLocalDataForbiddenError

    again = f"; {resume_hint}" if resume_hint else ""
    try:
        yield
    except MutationOutcomeUnknownError as exc:
        raise UploadError(
            f"Kili gave no answer to {exc.operation} while {doing}, so whether that batch went "
            f"in is unknown{again or '; run the same command again'}"
        ) from None
    except UploadFromLocalDataForbiddenError:
        raise UploadError(
            "the license of this Kili organization does not allow uploading local data, "
            "which importing texts needs: ask your Kili administrator to enable it"
        ) from None
    except TransportServerError as exc:
        what = "kept rate-limiting (429)" if exc.code == 429 else f"answered HTTP {exc.code}"
        raise UploadError(f"Kili {what} while {doing}{again}") from None
    except GraphQLError as exc:
        message = " ".join(str(exc).split())[:300]
        raise UploadError(f"Kili refused {doing}: {message}") from None
    except NotFound as exc:
        raise UploadError(f"Kili could not find {exc.name} while {doing}") from None
    except requests.RequestException as exc:
        raise UploadError(
            f"Kili at {endpoint} stopped answering ({type(exc).__name__}) while {doing}"
            f"{again or '; check the network and run the same command again'}"
        ) from None


__all__ = ["DEFAULT_ENDPOINT", "connect", "sdk_errors"]
