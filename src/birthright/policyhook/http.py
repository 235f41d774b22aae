"""The hook's transport: one HTTP POST with a time limit, every failure mapped to
``PolicyHookUnavailable`` (fail closed). Redirects are not followed."""

from __future__ import annotations

import time

import httpx

from birthright.policyhook.model import MAX_ANSWER_BYTES, PolicyHookUnavailable


class HttpHookTransport:
    """One pooled client for the process (building a TLS context per call costs ~100 ms)."""

    def __init__(self, *, verify: bool | str = True) -> None:
        #: TLS verification for https hooks: True (system store) or a CA bundle path.
        self._client = httpx.Client(verify=verify, follow_redirects=False)

    def close(self) -> None:
        self._client.close()

    def post(self, url: str, body: bytes, *, timeout_s: float) -> bytes:
        timeout = httpx.Timeout(timeout_s)
        deadline = time.monotonic() + timeout_s
        try:
            with self._client.stream(
                "POST",
                url,
                content=body,
                headers={"Content-Type": "application/json"},
                timeout=timeout,
            ) as response:
                if response.status_code != 200:
                    raise PolicyHookUnavailable(
                        f"the policy hook answered HTTP {response.status_code}; "
                        "enrollment fails closed"
                    )
                data = b""
                for chunk in response.iter_bytes():
                    data += chunk
                    if len(data) > MAX_ANSWER_BYTES:
                        break
                    if time.monotonic() > deadline:  # a hook trickling its answer
                        raise httpx.ReadTimeout("the answer took too long")
                return data
        except httpx.TimeoutException as e:
            raise PolicyHookUnavailable(
                f"the policy hook did not answer within {timeout_s * 1000:.0f} ms; "
                "enrollment fails closed"
            ) from e
        except httpx.HTTPError as e:
            raise PolicyHookUnavailable(
                f"the policy hook cannot be reached ({type(e).__name__}); enrollment fails closed"
            ) from e
