"""The retry policy and the URL rule of webhook subscriptions, on their own."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from pydantic import ValidationError

from evaluation.platform.deliveries import RetryPolicy
from evaluation.platform.subscriptions import WebhookUrlRejected, check_url
from models.settings import Settings


def test_waits_double_from_the_first_up_to_the_longest_with_jitter() -> None:
    policy = RetryPolicy(first_wait=timedelta(seconds=10), longest_wait=timedelta(hours=1))
    rng = random.Random(11)
    for attempts, ceiling in [(1, 10), (2, 20), (3, 40), (9, 2560), (10, 3600), (60, 3600)]:
        waits = [policy.wait(attempts, rng) for _ in range(200)]
        assert all(timedelta(seconds=ceiling / 2) <= w <= timedelta(seconds=ceiling) for w in waits)
        assert len(set(waits)) > 100  # jittered: senders back from an outage spread out


@pytest.mark.parametrize(
    ("url", "allow_http", "ok"),
    [
        ("https://platform.example.cn/hooks?tenant=1", False, True),
        ("http://localhost:8080/hooks", False, True),
        ("http://127.0.0.1/hooks", False, True),
        ("http://platform.example.cn/hooks", False, False),
        ("http://platform.example.cn/hooks", True, True),
        ("ftp://platform.example.cn/hooks", True, False),
        ("https://a:b@platform.example.cn/hooks", False, False),
        ("https://platform.example.cn/hooks#x", False, False),
        ("https://platform.example.cn:0x50/hooks", False, False),
        ("https://platform.example.cn/\nhooks", False, False),
        ("platform.example.cn/hooks", False, False),
    ],
)
def test_subscription_urls_are_https_or_local_http(url: str, allow_http: bool, ok: bool) -> None:
    if ok:
        assert check_url(url, allow_http=allow_http) == url
    else:
        with pytest.raises(WebhookUrlRejected):
            check_url(url, allow_http=allow_http)


@pytest.mark.parametrize(
    "settings",
    [
        {"archive_target": "ftp://archive.example.cn/in"},
        {
            "archive_target": "http://archive.example.cn/in",
            "archive_key_id": "k",
            "archive_secret": "s",
        },
        {"archive_target": "https://archive.example.cn/in"},  # nothing to sign with
        {"archive_target": "https://archive.example.cn/in", "archive_key_id": "k"},
    ],
)
def test_an_archive_target_it_cannot_use_is_refused_at_start(settings: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        Settings(**settings)  # type: ignore[arg-type]


def test_usable_archive_targets() -> None:
    assert Settings(archive_target="s3://evalsign-archive/centre-1").archive_target
    signed = Settings(
        archive_target="https://archive.example.cn/in",
        archive_key_id="evalsign",
        archive_secret="s3cret",  # type: ignore[arg-type]
    )
    assert signed.archive_secret is not None
