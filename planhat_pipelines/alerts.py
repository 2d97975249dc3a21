"""Alerts: logged by default, or POSTed as JSON to a webhook (Slack/Teams-style incoming webhooks).

The webhook URL is a secret (an incoming webhook's path is its token): the config names it only as
``alerts.webhook_url: {env: NAME}``, its value is read when an alert is sent, and logs and errors name only
the URL's host (and port), never its path.

A failed POST is tried again: up to ``1 + len(retry_delays)`` attempts, by default three, waiting 0.5 s then
1 s; each attempt may take :data:`WEBHOOK_TIMEOUT_SECONDS`, so one alert takes at most about 16.5 s, well
inside the 60 s a Dagster sensor tick may run. Connection errors, timeouts, HTTP 5xx, 408, 425 and 429 are
retried; any other HTTP 4xx (a deleted or mistyped webhook) is not, since asking again cannot help.
When every attempt fails, :func:`send_alert` raises :class:`AlertDeliveryError` (after logging the alert's
text, so it is not lost from the logs either): the caller decides what to do with an undelivered alert;
the alert sensors keep it for their next tick (see ``planhat_pipelines.defs.alerts``).

Why no alert library: ``dagster-slack`` posts through a Slack bot token and ``dagster-msteams`` only to Teams,
while the config takes any incoming-webhook URL; apprise's generic ``json://`` target sends its own body
(``version``/``title``/``message``/``type``), which would break the receivers that read ``text`` today. What is
left here is the payload, the secret-safe host for messages, and the retry policy the sensors rely on.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from urllib.parse import SplitResult, urlsplit

from planhat_pipelines.config import AlertsConfig
from planhat_pipelines.errors import PlanhatPipelinesError

log = logging.getLogger(__name__)

#: Seconds one webhook POST may take.
WEBHOOK_TIMEOUT_SECONDS = 5.0
#: Seconds waited before the second and the third attempt.
RETRY_DELAYS_SECONDS: tuple[float, ...] = (0.5, 1.0)
#: HTTP client errors that mean "try again later" (every 5xx does too).
_RETRIED_STATUSES = frozenset({408, 425, 429})


class AlertDeliveryError(PlanhatPipelinesError):
    """The webhook did not accept an alert after every attempt; the message names the host, never the URL."""

    transient = True


def alert_payload(title: str, text: str) -> dict[str, str]:
    """The JSON body sent: ``text`` holds title and body (what Slack-style webhooks display)."""
    return {"title": title, "body": text, "text": f"{title}\n{text}"}


def webhook_host(url: str) -> str:
    """``host[:port]`` of ``url``: the only part of a webhook URL that may be printed."""
    return _host(urlsplit(url))


def _host(parts: SplitResult) -> str:
    try:
        port = parts.port
    except ValueError:  # a port that is not a number: printing it cannot leak the token
        port = None
    return f"{parts.hostname}:{port}" if port else str(parts.hostname)


def send_alert(
    alerts: AlertsConfig,
    title: str,
    text: str,
    *,
    retry_delays: Sequence[float] = RETRY_DELAYS_SECONDS,
    timeout: float = WEBHOOK_TIMEOUT_SECONDS,
) -> bool:
    """Send one alert.

    Args:
        alerts: The config's ``alerts`` section: with ``webhook_url`` set, the alert is POSTed to the URL its
            environment variable holds now, as JSON (see :func:`alert_payload`); otherwise it is logged at
            WARNING.
        title: A short headline.
        text: The details (what failed, where, what to do).
        retry_delays: Seconds to wait before each further attempt; ``()`` tries once.
        timeout: Seconds each attempt may take.

    Returns:
        True when the webhook accepted it (2xx); False when no webhook is configured and it was logged.

    Raises:
        AlertDeliveryError: A webhook is configured and did not accept the alert (after the retries), or its
            variable does not hold an http(s) URL.
    """
    if alerts.webhook_url is None:
        log.warning("ALERT %s: %s", title, text)
        return False
    variable = alerts.webhook_url.name
    url = alerts.webhook_url.value().strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        log.error("alert not delivered (no webhook URL in %s); alert was: %s: %s", variable, title, text)
        raise AlertDeliveryError(
            f"alerts.webhook_url: environment variable {variable} does not hold an http(s) URL, so the alert "
            f"'{title}' was not delivered. Fix: export {variable}=https://... (the webhook's full URL)"
        )
    host = _host(parts)
    body = json.dumps(alert_payload(title, text)).encode()
    attempts = 1 + len(retry_delays)
    attempt, problem = 0, ""
    for attempt in range(1, attempts + 1):
        problem, retry = _post(url, body, timeout)
        if not problem:
            return True
        problem = _redact(problem, url, parts, host)
        log.warning("alert webhook failed (%s) at %s, attempt %d of %d", problem, host, attempt, attempts)
        if not retry or attempt == attempts:
            break
        time.sleep(retry_delays[attempt - 1])
    log.error("alert not delivered to %s; alert was: %s: %s", host, title, text)
    raise AlertDeliveryError(
        f"alert '{title}' not delivered to the webhook at {host} after {attempt} attempt(s) ({problem}). "
        f"Fix: check that {host} is reachable and that {variable} holds the webhook's current URL"
    )


def _redact(problem: str, url: str, parts: SplitResult, host: str) -> str:
    # A driver message may quote the URL (or its path or query): they carry the token, the host does not.
    problem = problem.replace(url, host)
    for secret in (parts.path, parts.query):
        if len(secret) > 1:
            problem = problem.replace(secret, "...")
    return problem


def _post(url: str, body: bytes, timeout: float) -> tuple[str, bool]:
    """POST ``body``: ("", _) when accepted, else (what went wrong, whether another attempt may succeed)."""
    request = urllib.request.Request(
        url,
        data=body,
        headers={"Content-Type": "application/json", "User-Agent": "planhat-pipelines"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
        return "", False
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}", exc.code >= 500 or exc.code in _RETRIED_STATUSES
    except urllib.error.URLError as exc:
        return str(exc.reason), True
    except OSError as exc:  # a timeout or reset while reading the answer
        return str(exc) or type(exc).__name__, True
    except ValueError as exc:  # a URL http.client refuses: the same URL will be refused again
        return str(exc), False
