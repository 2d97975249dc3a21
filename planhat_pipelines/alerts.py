"""Alerts: logged by default, or POSTed as JSON to a webhook (Slack/Teams-style incoming webhooks).

Sending never raises: an alert that cannot be delivered is logged with the reason, so the sensor
or run that raised it carries on.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request

from planhat_pipelines.config import AlertsConfig

log = logging.getLogger(__name__)

#: Seconds a webhook POST may take.
WEBHOOK_TIMEOUT_SECONDS = 10.0


def alert_payload(title: str, text: str) -> dict[str, str]:
    """The JSON body sent: ``text`` holds title and body (what Slack-style webhooks display)."""
    return {"title": title, "body": text, "text": f"{title}\n{text}"}


def send_alert(alerts: AlertsConfig, title: str, text: str) -> bool:
    """Send one alert.

    Args:
        alerts: The config's ``alerts`` section: with ``webhook_url`` set, the alert is POSTed there as
            JSON (see :func:`alert_payload`); otherwise it is logged at WARNING.
        title: A short headline.
        text: The details (what failed, where, what to do).

    Returns:
        True when the webhook accepted it (2xx), False when it was only logged or delivery failed.
    """
    if not alerts.webhook_url:
        log.warning("ALERT %s: %s", title, text)
        return False
    body = json.dumps(alert_payload(title, text)).encode()
    request = urllib.request.Request(
        alerts.webhook_url,
        data=body,
        headers={"Content-Type": "application/json", "User-Agent": "planhat-pipelines"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_SECONDS) as response:
            response.read()
            return True
    except urllib.error.HTTPError as exc:
        log.error("alert webhook answered HTTP %s; alert was: %s: %s", exc.code, title, text)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        # The URL is not logged: incoming-webhook URLs carry their secret token.
        log.error("alert webhook failed (%s); alert was: %s: %s", exc, title, text)
    return False
