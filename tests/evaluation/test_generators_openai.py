"""The openai generator against a real loopback HTTP server (tests/loopback_openai.py)."""
import socket

import pytest

from evaluation.generators import GenerationHooks, GenerationParams, PromptInput, fingerprint_for, load_generator
from evaluation.generators.openai import token_counts
from evaluation.http_client import retry_after_s
from tests.loopback_openai import LoopbackOpenAI
from toxplatform.errors import ApplicationError

PROMPTS = [PromptInput(f"prompt number {i} says hello", "en") for i in range(6)]
FAST_RETRIES = {"backoff_s": 0.01, "max_backoff_s": 0.05, "max_retries": 3, "timeout_s": 5}


@pytest.fixture
def server():
    with LoopbackOpenAI() as running:
        yield running


def make(server_or_url, chat=False, **params):
    url = server_or_url if isinstance(server_or_url, str) else server_or_url.url
    return load_generator(
        {
            "name": "remote",
            "backend": "openai",
            "location": url,
            "remote_model": "loopback-model",
            "use_chat_template": chat,
            "params": {**FAST_RETRIES, **params},
        }
    )


def test_completions_k_samples_per_prompt_in_order(server):
    results = make(server).generate(PROMPTS, GenerationParams(k=3, max_new_tokens=20, top_p=0.8, seed=4))
    assert [len(samples) for samples in results] == [3] * len(PROMPTS)
    for prompt, samples in zip(PROMPTS, results):
        assert all(prompt.text.endswith(s.text.split(": ", 1)[1]) for s in samples)
        assert [s.text.split(" says ")[1].split("/")[0] for s in samples] == ["0", "1", "2"]
    body = server.requests[0]
    assert server.paths[0] == "/v1/completions"
    assert body["n"] == 3 and body["max_tokens"] == 20 and body["top_p"] == 0.8 and body["model"] == "loopback-model"
    assert isinstance(body["seed"], int)


def test_same_seed_same_requests_other_seed_other_requests(server):
    gen = make(server)
    first = gen.generate(PROMPTS[:2], GenerationParams(k=2, seed=1))
    again = gen.generate(PROMPTS[:2], GenerationParams(k=2, seed=1))
    other = gen.generate(PROMPTS[:2], GenerationParams(k=2, seed=2))
    assert first == again
    assert first != other


def test_chat_completions_carry_the_system_message(server):
    prompt = PromptInput("hi there friend", "en", system="Be kind.")
    results = make(server, chat=True).generate([prompt], GenerationParams(k=2, max_new_tokens=20))
    assert server.paths == ["/v1/chat/completions"]
    assert server.requests[0]["messages"] == [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "hi there friend"},
    ]
    assert results[0][0].text.endswith("hi there friend")


def test_base_model_gets_the_system_text_before_the_prompt(server):
    make(server).generate([PromptInput("hello", "en", system="Be kind.")], GenerationParams(k=1))
    assert server.requests[0]["prompt"] == "Be kind.\n\nhello"


def test_retries_429_and_500_then_succeeds(server):
    server.fail_next(2, status=429, retry_after="0")
    server.fail_next(1, status=500)
    results = make(server).generate(PROMPTS[:1], GenerationParams(k=2))
    assert len(results[0]) == 2
    assert len(server.requests) == 4  # three failures, then the answer


def test_gives_up_after_max_retries_with_the_reason(server):
    server.fail_next(10, status=503, message="overloaded")
    with pytest.raises(ApplicationError) as error:
        make(server, max_retries=2).generate(PROMPTS[:1], GenerationParams(k=1))
    assert "HTTP 503 Service Unavailable" in str(error.value)
    assert "overloaded" not in str(error.value)  # the server's words stay in the worker log
    assert len(server.requests) == 3


def test_a_server_slower_than_the_timeout_is_retried_then_reported(server):
    server.delay_s = 1.0
    with pytest.raises(ApplicationError) as error:
        make(server, timeout_s=0.2, max_retries=1).generate(PROMPTS[:1], GenerationParams(k=1))
    assert "ReadTimeout" in str(error.value) and "cannot reach" in str(error.value)
    assert error.value.extra["attempts"] == 2
    assert len(server.requests) == 2  # each timed-out request was sent, then given up on
    server.delay_s = 0.05  # within the timeout: the same client succeeds
    assert len(make(server, timeout_s=2).generate(PROMPTS[:1], GenerationParams(k=2))[0]) == 2


def test_client_error_is_reported_without_retrying_and_its_text_goes_to_the_log_only(server, caplog):
    server.reject = (400, "max_tokens is too large: 999999")
    with pytest.raises(ApplicationError) as error:
        make(server).generate(PROMPTS[:1], GenerationParams(k=1))
    assert "HTTP 400 Bad Request (the server refused the parameters)" in str(error.value)
    assert "999999" not in str(error.value)
    assert "max_tokens is too large: 999999" in caplog.text
    assert len(server.requests) == 1


def test_unknown_model_is_a_clear_error(server):
    gen = load_generator({"name": "r", "backend": "openai", "location": server.url, "remote_model": "nope"})
    with pytest.raises(ApplicationError, match="HTTP 404 Not Found .no such path or model: check the URL and remote_model"):
        gen.generate(PROMPTS[:1], GenerationParams(k=1))


def test_unreachable_port_is_an_application_error():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ApplicationError, match=f"cannot reach http://127.0.0.1:{port}/v1/completions"):
        make(f"http://127.0.0.1:{port}", max_retries=1).generate(PROMPTS[:1], GenerationParams(k=1))


def test_server_that_caps_n_is_asked_again_for_the_rest(server):
    server.max_n = 2
    results = make(server).generate(PROMPTS[:1], GenerationParams(k=5))
    assert len(results[0]) == 5
    assert [body["n"] for body in server.requests] == [5, 3, 1]
    # Follow-up requests use other seeds, so they are not copies of the first answers.
    assert len({body["seed"] for body in server.requests}) == 3
    assert len({s.text for s in results[0]}) == 5


def test_concurrency_is_bounded(server):
    server.delay_s = 0.05
    prompts = [PromptInput(f"p{i}", "en") for i in range(12)]
    make(server, max_concurrency=3).generate(prompts, GenerationParams(k=1))
    assert len(server.requests) == 12
    assert 2 <= server.max_in_flight <= 3


def test_api_key_is_sent_as_bearer_token(server, monkeypatch, settings):
    server.require_api_key = "sk-test"
    monkeypatch.setenv("LOOPBACK_KEY", "sk-test")
    settings.OPENAI_API_KEY_ENVS = ["LOOPBACK_KEY"]
    settings.OPENAI_KEY_HOSTS = ["127.0.0.1"]
    results = make(server, api_key_env="LOOPBACK_KEY").generate(PROMPTS[:1], GenerationParams(k=1))
    assert results[0][0].text
    assert server.headers[0]["Authorization"] == "Bearer sk-test"
    with pytest.raises(ApplicationError, match="HTTP 401 Unauthorized .the API key is missing or wrong"):
        make(server, api_key="wrong").generate(PROMPTS[:1], GenerationParams(k=1))


def test_greedy_asks_once_and_repeats(server):
    results = make(server).generate(PROMPTS[:1], GenerationParams(k=4, temperature=0))
    assert server.requests[0]["n"] == 1 and server.requests[0]["temperature"] == 0
    assert len({s.text for s in results[0]}) == 1 and len(results[0]) == 4


def test_logits_processors_cannot_go_over_http(server):
    with pytest.raises(ApplicationError, match="HTTP endpoint cannot"):
        make(server).generate(PROMPTS[:1], GenerationParams(k=1), GenerationHooks(logits_processors=[object()]))


def test_bad_url_and_missing_model_name_are_refused():
    with pytest.raises(ApplicationError, match="not an http"):
        load_generator({"name": "r", "backend": "openai", "location": "ftp://x", "remote_model": "m"})
    with pytest.raises(ApplicationError, match="remote_model"):
        load_generator({"name": "r", "backend": "openai", "location": "http://127.0.0.1:1"})


def test_fingerprint_is_endpoint_and_model(server):
    a = fingerprint_for({"name": "a", "backend": "openai", "location": server.url, "remote_model": "m1"})
    b = fingerprint_for({"name": "b", "backend": "openai", "location": server.url + "/", "remote_model": "m1"})
    c = fingerprint_for({"name": "c", "backend": "openai", "location": server.url, "remote_model": "m2"})
    assert a == b != c
    assert make(server).fingerprint() == fingerprint_for(
        {"name": "d", "backend": "openai", "location": server.url, "remote_model": "loopback-model"}
    )


def test_token_counts_split_a_request_total():
    # Two choices hit the limit (5 each); the other 7 tokens go 4/3 by text length.
    assert token_counts(["a b c d", "x", "aaaa", "bbb"], ["length", "length", "stop", "stop"], {"completion_tokens": 17}, 5) == [
        5,
        5,
        4,
        3,
    ]
    assert token_counts(["one two", "three"], ["stop", "stop"], None, 5) == [2, 1]


def test_retry_after_accepts_seconds_and_dates():
    assert retry_after_s("3") == 3.0
    assert retry_after_s(None) is None
    assert retry_after_s("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


# --- what an endpoint may be sent and may send back -------------------------------------------


def test_only_allow_listed_environment_variables_can_be_a_key(server, monkeypatch, settings):
    """A spec naming DATABASE_URL as its key variable would mail the database password away."""
    monkeypatch.setenv("DATABASE_URL", "postgres://user:secret@db/tox")
    settings.OPENAI_KEY_HOSTS = ["127.0.0.1"]
    for where in (lambda: make(server, api_key_env="DATABASE_URL"),
                  lambda: fingerprint_for({"name": "x", "backend": "openai", "location": server.url,
                                           "remote_model": "m", "params": {"api_key_env": "DATABASE_URL"}})):
        with pytest.raises(ApplicationError, match="'DATABASE_URL' is not one of the environment variables"):
            where()
    assert server.requests == [] and server.headers == []


def test_keys_from_the_environment_go_only_to_allowed_hosts(server, monkeypatch, settings):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-platform")
    settings.OPENAI_API_KEY = "sk-platform"
    settings.OPENAI_KEY_HOSTS = ["api.openai.com"]
    # Named explicitly: refused before anything is sent.
    with pytest.raises(ApplicationError, match="may not be sent to 127.0.0.1"):
        make(server, api_key_env="OPENAI_API_KEY")
    # The platform's default key stays home: the request goes out without it.
    make(server).generate(PROMPTS[:1], GenerationParams(k=1))
    assert "Authorization" not in server.headers[0]
    settings.OPENAI_KEY_HOSTS = ["127.0.0.1"]
    make(server).generate(PROMPTS[:1], GenerationParams(k=1))
    assert server.headers[1]["Authorization"] == "Bearer sk-platform"


@pytest.mark.parametrize("url", [
    "http://169.254.169.254/latest/meta-data",  # cloud metadata (link-local)
    "http://10.0.0.7:8000/v1", "http://192.168.1.1", "http://[::1]:8000", "http://0.0.0.0:8000",
    "http://127.0.0.1:8000", "http://localhost:8000", "http://[::ffff:127.0.0.1]:8000",
])
def test_private_and_link_local_endpoints_are_refused_unless_an_operator_allows_them(url, settings):
    settings.ENDPOINT_ALLOWED_NETWORKS = []  # production's default
    with pytest.raises(ApplicationError, match="loopback, private or link-local address"):
        fingerprint_for({"name": "x", "backend": "openai", "location": url, "remote_model": "m"})
    with pytest.raises(ApplicationError, match="loopback, private or link-local address"):
        make(url, max_retries=0).generate(PROMPTS[:1], GenerationParams(k=1))


def test_an_allowed_network_opens_only_itself(server, settings):
    settings.ENDPOINT_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    with pytest.raises(ApplicationError, match="loopback"):
        make(server).generate(PROMPTS[:1], GenerationParams(k=1))
    assert server.requests == []
    settings.ENDPOINT_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    assert make(server).generate(PROMPTS[:1], GenerationParams(k=1))[0][0].text


def test_a_reply_that_is_not_json_is_not_copied_into_the_error():
    import http.server

    class Html(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<html>DATABASE_URL=postgres://user:secret@db</html>")

        def log_message(self, *args):
            pass

    html = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Html)
    import threading

    threading.Thread(target=html.serve_forever, daemon=True).start()
    try:
        with pytest.raises(ApplicationError, match="not a JSON object") as error:
            make(f"http://127.0.0.1:{html.server_address[1]}").generate(PROMPTS[:1], GenerationParams(k=1))
        assert "secret" not in str(error.value) and "DATABASE_URL" not in str(error.value)
    finally:
        html.shutdown()


def test_redirects_are_not_followed(server):
    import http.server
    import threading

    class Redirect(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.send_response(307)
            self.send_header("Location", server.url + "/completions")
            self.end_headers()

        def log_message(self, *args):
            pass

    redirect = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=redirect.serve_forever, daemon=True).start()
    try:
        with pytest.raises(ApplicationError, match="HTTP 307 .*redirect"):
            make(f"http://127.0.0.1:{redirect.server_address[1]}").generate(PROMPTS[:1], GenerationParams(k=1))
        assert server.requests == []
    finally:
        redirect.shutdown()


# --- servers that cap n (llama.cpp) or ignore it (Ollama) -------------------------------------


def test_a_server_that_refuses_n_above_its_slots_gets_k_split_into_requests_it_accepts(server):
    """llama.cpp with 4 slots and the RTP protocol's k = 25: every job used to fail."""
    server.refuse_n_above = 4
    generator = make(server)
    results = generator.generate(PROMPTS[:2], GenerationParams(k=25, seed=7))
    assert [len(samples) for samples in results] == [25, 25]
    accepted = [body["n"] for body in server.requests if body["n"] <= 4]
    refused = [body["n"] for body in server.requests if body["n"] > 4]
    assert sorted(accepted) == sorted([4] * 6 + [1] + [4] * 6 + [1])  # 6 x 4 + 1 = 25, two prompts
    assert len(refused) <= 2  # learned once for the model, not once per request
    assert generator.max_n == 4
    for samples in results:
        assert len({s.text for s in samples}) == 25  # every request has its own seed

    # A re-run (a fresh worker) asks the same requests with the same seeds: the same text.
    first = [[s.text for s in samples] for samples in results]
    accepted_before = [(b["n"], b["seed"]) for b in server.requests if b["n"] <= 4]
    server.requests.clear()
    again = make(server).generate(PROMPTS[:2], GenerationParams(k=25, seed=7))
    assert [[s.text for s in samples] for samples in again] == first
    assert sorted((b["n"], b["seed"]) for b in server.requests if b["n"] <= 4) == sorted(accepted_before)


def test_the_cap_can_be_given_in_advance_and_then_nothing_is_refused(server):
    server.refuse_n_above = 4
    results = make(server, max_n=4).generate(PROMPTS[:1], GenerationParams(k=10))
    assert len(results[0]) == 10
    assert [body["n"] for body in server.requests] == [4, 4, 2]


def test_a_server_that_ignores_n_gets_one_request_per_sample_each_with_its_own_seed(server):
    """Ollama's OpenAI endpoint answers one choice whatever n is."""
    server.max_n = 1
    results = make(server).generate(PROMPTS[:1], GenerationParams(k=5, seed=3))
    assert len(results[0]) == 5 and len({s.text for s in results[0]}) == 5
    assert len(server.requests) == 5 and len({body["seed"] for body in server.requests}) == 5
    first = [s.text for s in results[0]]
    assert [s.text for s in make(server).generate(PROMPTS[:1], GenerationParams(k=5, seed=3))[0]] == first


def test_a_refusal_that_names_no_smaller_cap_is_an_error_not_a_loop(server):
    server.reject = (400, "Field 'n': Value must be between 1 <= value <= 8, but got 2")
    with pytest.raises(ApplicationError, match="HTTP 400|refused n=1"):
        make(server).generate(PROMPTS[:1], GenerationParams(k=1))
    assert len(server.requests) == 1
