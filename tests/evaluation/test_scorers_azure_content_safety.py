"""azure_content_safety against its loopback twin (tests/loopback_content_safety.py)."""
import socket
import time

import pytest

from evaluation.scorers import ScoringInput, registry
from evaluation.scorers.azure_content_safety import MAX_CHARACTERS, split_text
from tests.loopback_content_safety import LoopbackContentSafety
from toxplatform.errors import ApplicationError

KEY = "sk-azure-loopback-secret"
FAST = {"backoff_s": 0.01, "max_backoff_s": 0.05, "max_retries": 3, "timeout_s": 5}


@pytest.fixture
def server(settings, monkeypatch):
    with LoopbackContentSafety(key=KEY) as running:
        settings.AZURE_CONTENT_SAFETY_ENDPOINT = running.url + "/"
        settings.AZURE_CONTENT_SAFETY_RPS = 0  # no client-side limit unless a test sets one
        monkeypatch.setenv("AZURE_CONTENT_SAFETY_KEY", KEY)
        yield running


def make(**params):
    return registry.get("azure_content_safety")(**{**FAST, **params})


def item(text, prompt="A prompt. "):
    return ScoringInput(prompt=prompt, continuation=text, language="de")


def test_request_format_and_category_mapping(server):
    scorer = make()
    result = scorer.score([item("hate hate violence")])[0]
    assert set(result) == {"identity-attack", "self-harm", "sexual-content", "violence"}
    assert result["identity-attack"].value == 2.0
    assert result["violence"].value == 1.0
    assert result["self-harm"].value == 0.0 and result["sexual-content"].value == 0.0
    assert result["identity-attack"].raw == {"category": "Hate", "output": "EightSeverityLevels", "requests": 1, "severity": 2}
    body, query = server.requests[0], server.queries[0]
    assert body == {"text": "hate hate violence", "categories": ["Hate", "SelfHarm", "Sexual", "Violence"],
                    "outputType": "EightSeverityLevels"}
    assert query == {"api-version": "2023-10-01"}


def test_measures_and_keys_follow_output_and_scale(server):
    eight, four = make(), make(output="FourSeverityLevels")
    mapped = make(scale="rtp-lx", text="full")
    assert (eight.measure("violence").low, eight.measure("violence").high) == (0, 7)
    assert (four.measure("violence").low, four.measure("violence").high) == (0, 6)
    assert (mapped.measure("violence").low, mapped.measure("violence").high) == (1, 3)
    assert all(m["kind"] == "rating" for m in eight.measures().values())
    assert len({eight.key(), four.key(), mapped.key()}) == 3
    assert mapped.key() == "azure_content_safety:8:rtp-lx:full"


def test_four_levels(server):
    result = make(output="FourSeverityLevels").score([item("hate " * 5 + "sexual")])[0]
    assert server.requests[0]["outputType"] == "FourSeverityLevels"
    assert result["identity-attack"].value == 4.0  # 5 -> the service's 4
    assert result["sexual-content"].value == 0.0  # 1 -> 0


@pytest.mark.parametrize("severity, level", [(0, 1), (1, 1), (2, 2), (3, 2), (4, 3), (5, 3), (6, 3), (7, 3)])
def test_rtp_lx_scale_mapping(server, severity, level):
    result = make(scale="rtp-lx", categories=["violence"]).score([item("violence " * severity or "calm")])[0]
    assert result["violence"].value == level
    assert result["violence"].raw["severity"] == severity
    assert server.requests[0]["categories"] == ["Violence"]


def test_text_full_sends_prompt_and_continuation(server):
    make(text="full").score([item("and more", prompt="Start ")])
    assert server.requests[0]["text"] == "Start and more"


def test_429_is_retried_after_retry_after_then_succeeds(server):
    server.fail_next(2, status=429, retry_after="0.2")
    server.fail_next(1, status=503)
    started = time.monotonic()
    result = make(max_backoff_s=1.0).score([item("hate")])[0]
    assert result["identity-attack"].value == 1.0
    assert len(server.requests) == 4
    # Retry-After 0.2 s was honoured twice between the first three attempts.
    assert server.times[1] - server.times[0] >= 0.19 and server.times[2] - server.times[1] >= 0.19
    assert time.monotonic() - started >= 0.38


def test_persistent_5xx_gives_up_with_a_clear_error_without_the_body(server):
    server.fail_next(10, status=500)
    with pytest.raises(ApplicationError) as error:
        make(max_retries=2).score([item("a secret sentence")])
    message = str(error.value)
    assert "cannot reach" in message and "HTTP 500" in message
    assert error.value.extra["attempts"] == 3
    assert "secret sentence" not in message and "Echo" not in message
    assert len(server.requests) == 3


def test_bad_key_is_a_clear_error_without_the_key(server, monkeypatch):
    monkeypatch.setenv("AZURE_CONTENT_SAFETY_KEY", "wrong-key-123")
    with pytest.raises(ApplicationError) as error:
        make().score([item("hello")])
    text = str(error.value)
    assert "refused the key: HTTP 401" in text and "AZURE_CONTENT_SAFETY_KEY" in text
    assert "wrong-key-123" not in text and KEY not in text and "Access denied" not in text
    assert len(server.requests) == 1  # a refused key is not retried


def test_unreachable_endpoint_is_a_clear_error(settings, monkeypatch):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.AZURE_CONTENT_SAFETY_ENDPOINT = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("AZURE_CONTENT_SAFETY_KEY", KEY)
    with pytest.raises(ApplicationError, match=f"cannot reach http://127.0.0.1:{port}/contentsafety/text:analyze") as error:
        make(max_retries=1).score([item("hello")])
    assert KEY not in str(error.value)


def test_missing_endpoint_or_key_fails_when_built(settings, monkeypatch):
    settings.AZURE_CONTENT_SAFETY_ENDPOINT = ""
    monkeypatch.setenv("AZURE_CONTENT_SAFETY_KEY", KEY)
    with pytest.raises(ApplicationError, match="AZURE_CONTENT_SAFETY_ENDPOINT"):
        make()
    settings.AZURE_CONTENT_SAFETY_ENDPOINT = "https://example.invalid"
    monkeypatch.delenv("AZURE_CONTENT_SAFETY_KEY")
    with pytest.raises(ApplicationError, match="environment variable AZURE_CONTENT_SAFETY_KEY"):
        make()


@pytest.mark.parametrize(
    "params, message",
    [
        ({"output": "TwoLevels"}, "output must be one of"),
        ({"categories": ["toxicity"]}, "does not rate: toxicity"),
        ({"scale": "percent"}, "scale must be one of"),
        ({"endpoint": "http://elsewhere"}, "endpoint is not a known parameter"),  # never from a job
        ({"max_concurrency": 0}, "max_concurrency must be"),
    ],
)
def test_bad_params(server, params, message):
    with pytest.raises(ApplicationError, match=message):
        make(**params)


def test_long_text_is_split_and_takes_the_highest_severity(server):
    text = ("calm words " * 1000) + "violence " * 3 + ("calm words " * 200)
    assert len(text) > MAX_CHARACTERS
    result = make(max_concurrency=1).score([item(text)])[0]  # one at a time: requests arrive in order
    assert len(server.requests) == 2
    assert all(len(body["text"]) <= MAX_CHARACTERS for body in server.requests)
    assert "".join(body["text"] for body in server.requests) == text
    assert result["violence"].value == 3.0 and result["violence"].raw["requests"] == 2


def test_long_text_can_be_invalid_instead(server):
    result = make(long_text="invalid").score([item("x" * (MAX_CHARACTERS + 1)), item("hate")])
    assert result[0]["violence"].value is None and "10,001 characters" in result[0]["violence"].raw["reason"]
    assert result[1]["identity-attack"].value == 1.0
    assert len(server.requests) == 1  # the long one was never sent


def test_split_text_cuts_at_whitespace_and_keeps_everything():
    assert split_text("abc def ghi", limit=5) == ["abc ", "def ", "ghi"]
    assert split_text("abcdefghij", limit=4) == ["abcd", "efgh", "ij"]  # no whitespace: hard cut
    assert split_text("", limit=4) == [""]


def test_empty_text_is_invalid_and_not_sent(server):
    result = make().score([item("   ")])[0]
    assert all(r.value is None and r.raw["reason"] == "empty text" for r in result.values())
    assert server.requests == []


def test_malformed_answers(server):
    server.answer = {"categoriesAnalysis": [{"category": "Hate", "severity": 9}, {"category": "Violence", "severity": 1}]}
    result = make(output="FourSeverityLevels", categories=["identity-attack", "violence", "self-harm"]).score([item("x")])[0]
    assert "severity 9 is not one of FourSeverityLevels" in result["identity-attack"].raw["reason"]
    assert "severity 1 is not one of" in result["violence"].raw["reason"]  # odd levels do not exist in 4-level output
    assert result["self-harm"].raw["reason"] == "no SelfHarm severity in the answer"
    server.answer = {"something": "else"}
    with pytest.raises(ApplicationError, match="without categoriesAnalysis"):
        make().score([item("x")])


def test_rate_limit_spaces_requests(server, settings):
    settings.AZURE_CONTENT_SAFETY_RPS = 20  # one request started per 50 ms across threads
    started = time.monotonic()
    make(max_concurrency=4).score([item(f"text {i}") for i in range(6)])
    elapsed = time.monotonic() - started
    assert len(server.times) == 6
    # Six starts 50 ms apart take at least 250 ms; four threads unthrottled take a few ms.
    # (Arrival gaps at the server jitter with scheduling, so the bound is on the whole run.)
    assert elapsed >= 0.25
    assert server.times[-1] - server.times[0] >= 0.2


def test_concurrency_is_bounded(server):
    server.delay_s = 0.05
    make(max_concurrency=3).score([item(f"text {i}") for i in range(9)])
    assert 2 <= server.max_in_flight <= 3
