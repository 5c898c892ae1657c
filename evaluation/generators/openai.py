"""Any OpenAI-compatible HTTP endpoint: vLLM, TGI, llama.cpp server, Ollama, hosted APIs.

ModelSpec: location = base URL ("http://host:8000/v1"; a bare "http://host:8000" gets
"/v1"), remote_model = the served model name, use_chat_template = use
/v1/chat/completions instead of /v1/completions. Options in spec.params (defaults below):
max_concurrency, timeout_s, max_retries, backoff_s, max_backoff_s, max_n, api_key_env (name of an
environment variable holding the key, one of TOXPLATFORM_API_KEY_ENVS; else
settings.OPENAI_API_KEY), api_key (a key written into the spec by its author).

Safety (toxplatform/outbound.py): keys from the environment go only to hosts in
TOXPLATFORM_API_KEY_HOSTS; endpoints that resolve to loopback, private or link-local
addresses are refused unless their network is in TOXPLATFORM_ENDPOINT_NETWORKS; redirects are
not followed; what a server answers is logged for the operator, never copied into a job's
error text.

One request per prompt asks for all k samples (n=k) with a seed derived from (job seed,
prompt, first sample index), so servers that honour `seed` (vLLM, llama.cpp) repeat their
text on a re-run; hosted APIs only try. A server that returns fewer choices than asked
(Ollama ignores n) gets follow-up requests for the rest; one that refuses n above a cap
(llama.cpp: "Field 'n': Value must be between 1 <= value <= 4") has the cap learned from the
refusal and kept for the model (or set in advance with the max_n option), and every prompt's
k samples are split into requests of at most that many.

token_count: servers report only the total completion tokens of a request. A choice that
stopped for "length" has exactly max_tokens; the rest of the total is shared among the
other choices in proportion to their text length. Without usage, whitespace-separated
words are counted. Both are approximations, documented as such.
"""
from __future__ import annotations

import logging
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import requests

from evaluation import model_loading
from evaluation.generators.base import (
    GenerationHooks,
    GenerationParams,
    Generator,
    ModelConfig,
    PromptInput,
    Sample,
    chat_messages,
    check_generation_params,
    registry,
    render_plain,
    sample_seed,
)
from evaluation.http_client import RetryingClient
from toxplatform import outbound
from toxplatform.errors import ApplicationError

logger = logging.getLogger(__name__)

DEFAULTS = {
    "max_concurrency": 8,
    "timeout_s": 120.0,
    "max_retries": 5,
    "backoff_s": 0.5,
    "max_backoff_s": 30.0,
    "max_n": None,
}


def base_url(location: str) -> str:
    url = (location or "").strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or not parts.hostname:
        raise ApplicationError(f"endpoint URL {location!r} is not an http(s) URL")
    if parts.username or parts.password:
        raise ApplicationError("endpoint URLs may not carry a user name or password (use api_key_env)")
    return url if parts.path else url + "/v1"


def check_endpoint(config: ModelConfig) -> str:
    """The endpoint's base URL, with its address and key checked (job creation runs this)."""
    url = base_url(config.location)
    try:
        outbound.check_address(url)
    except outbound.Unresolvable as exc:
        raise ApplicationError(str(exc)) from None
    outbound.api_key(config.params, url)
    return url


class _NTooLarge(Exception):
    """The server refused n and said how many choices it accepts."""

    def __init__(self, cap: int):
        super().__init__(f"n above {cap}")
        self.cap = cap


# llama.cpp: "Field 'n': Value must be between 1 <= value <= 4, but got 5"; others: "n must be <= 4".
N_CAP = re.compile(r"""(?:Field\s+['"]n['"].*?<=\s*value\s*<=\s*(\d+))|(?:\bn\b\s+must\s+be\s*(?:<=|at most)\s*(\d+))""",
                   re.IGNORECASE)


def n_cap(message: str) -> int | None:
    found = N_CAP.search(message or "")
    return int(found.group(1) or found.group(2)) if found else None


@registry.register
class OpenAIGenerator(Generator):
    name = "openai"
    label = "OpenAI-compatible HTTP endpoint"

    @classmethod
    def fingerprint_of(cls, config: ModelConfig) -> str:
        # The address and key rules are checked here too: job creation fingerprints first.
        return model_loading.fingerprint_endpoint(check_endpoint(config), config.remote_model)

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        self.base_url = base_url(config.location)
        if not config.remote_model:
            raise ApplicationError("an openai-backend model needs remote_model (the model name the endpoint serves)")
        options = {**DEFAULTS, **{k: v for k, v in config.params.items() if k in DEFAULTS}}
        try:
            self.max_concurrency = max(1, int(options["max_concurrency"]))
            self.timeout_s = float(options["timeout_s"])
            self.max_retries = max(0, int(options["max_retries"]))
            self.backoff_s = float(options["backoff_s"])
            self.max_backoff_s = float(options["max_backoff_s"])
            # Choices per request the server accepts (llama.cpp: its slots); learned from a refusal.
            self.max_n = int(options["max_n"]) if options["max_n"] is not None else None
            if self.max_n is not None and self.max_n < 1:
                raise ValueError("max_n must be at least 1")
        except (TypeError, ValueError) as exc:
            raise ApplicationError(f"bad endpoint option for model {config.name!r}: {exc}") from exc
        api_key = outbound.api_key(config.params, self.base_url)
        self.client = RetryingClient(
            headers={"Authorization": f"Bearer {api_key}"} if api_key else {},
            timeout_s=self.timeout_s, max_retries=self.max_retries, backoff_s=self.backoff_s,
            max_backoff_s=self.max_backoff_s, describe=outbound.describe_status,
            context={"model": config.remote_model}, on_refusal=self._on_refusal,
        )
        self._cap_lock = threading.Lock()

    def fingerprint(self) -> str:
        return model_loading.fingerprint_endpoint(self.base_url, self.config.remote_model)

    def generate(
        self, prompts: list[PromptInput], params: GenerationParams, hooks: GenerationHooks | None = None
    ) -> list[list[Sample]]:
        check_generation_params(params)
        if hooks and hooks.logits_processors:
            raise ApplicationError(
                "this detox method changes logits while decoding, which an HTTP endpoint cannot do",
                {"model": self.config.name, "fix": "use a local (hf) model"},
            )
        with ThreadPoolExecutor(max_workers=self.max_concurrency) as pool:
            return list(pool.map(lambda prompt: self._samples_for(prompt, params), prompts))

    # --- one prompt ----------------------------------------------------------------
    def _samples_for(self, prompt: PromptInput, params: GenerationParams) -> list[Sample]:
        greedy = params.temperature == 0
        wanted = 1 if greedy else params.k
        samples: list[Sample] = []
        while len(samples) < wanted:
            # A request is seeded by the index of its first sample: follow-up requests (a server
            # that caps n) do not repeat the first answers, and a re-run with the same cap asks
            # the same questions, so a server that honours seeds repeats its text.
            seed = sample_seed(params.seed, prompt, len(samples)) % (2**31)
            n = min(wanted - len(samples), self.max_n or wanted)
            try:
                got = self._request(prompt, params, n, seed)
            except _NTooLarge as refused:
                if refused.cap >= n or refused.cap < 1:
                    raise ApplicationError(f"{self.base_url} refused n={n}", {"model": self.config.remote_model}) from None
                self._learn_max_n(refused.cap)
                continue
            if not got:
                raise ApplicationError(f"{self.base_url} returned no choices", {"model": self.config.remote_model})
            samples.extend(got)
        samples = samples[:wanted]
        return samples * params.k if greedy else samples

    def _learn_max_n(self, cap: int) -> None:
        """Remember a server's cap on n (llama.cpp: its parallel slots) for this model."""
        with self._cap_lock:
            if self.max_n is None or cap < self.max_n:
                logger.info("%s accepts at most n=%d; set the model's max_n option to skip the refusal", self.base_url, cap)
                self.max_n = cap

    def _request(self, prompt: PromptInput, params: GenerationParams, n: int, seed: int) -> list[Sample]:
        body = {
            "model": self.config.remote_model,
            "n": n,
            "max_tokens": params.max_new_tokens,
            "top_p": params.top_p,
            "temperature": params.temperature,
            "seed": seed,
        }
        if params.min_new_tokens:
            body["min_tokens"] = params.min_new_tokens  # vLLM's extension; others ignore or refuse it
        if self.uses_chat_template:
            path, body["messages"] = "/chat/completions", chat_messages(prompt)
        else:
            path, body["prompt"] = "/completions", render_plain(prompt)
        data = self._post(path, body)
        choices = sorted(data.get("choices") or [], key=lambda c: c.get("index", 0))
        texts = [self._choice_text(c) for c in choices]
        counts = token_counts(texts, [c.get("finish_reason") for c in choices], data.get("usage"), params.max_new_tokens)
        return [Sample(text=t, token_count=c) for t, c in zip(texts, counts)]

    def _choice_text(self, choice: dict) -> str:
        if self.uses_chat_template:
            return ((choice.get("message") or {}).get("content")) or ""
        return choice.get("text") or ""

    # --- HTTP ------------------------------------------------------------------------
    def _post(self, path: str, body: dict) -> dict:
        return self.client.post_json(self.base_url + path, body)

    def _on_refusal(self, response: requests.Response) -> None:
        # What the server said goes to the worker log only: job errors are read by every
        # researcher, and a reply body is not ours to show them.
        logger.warning("%s answered HTTP %s: %r", response.url, response.status_code, error_message(response))
        if response.status_code == 400:
            cap = n_cap(error_message(response))
            if cap is not None:
                raise _NTooLarge(cap)


def error_message(response: requests.Response) -> str:
    """The server's own error text, for the worker log: OpenAI-style {"error": {"message": ...}}, or the body."""
    try:
        data = response.json()
    except ValueError:
        return response.text.strip()[:500] or response.reason or ""
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])[:500]
    if isinstance(error, str):
        return error[:500]
    if isinstance(data, dict) and data.get("message"):
        return str(data["message"])[:500]
    return str(data)[:500]


def token_counts(texts: list[str], finish_reasons: list, usage: dict | None, max_tokens: int) -> list[int]:
    """Per-choice token counts from a request's total (see the module docstring)."""
    total = (usage or {}).get("completion_tokens")
    if total is None:
        return [len(text.split()) for text in texts]
    counts = [max_tokens if reason == "length" else None for reason in finish_reasons]
    open_indices = [i for i, count in enumerate(counts) if count is None]
    remaining = max(0, int(total) - max_tokens * (len(texts) - len(open_indices)))
    lengths = [len(texts[i]) for i in open_indices]
    weight = sum(lengths)
    shares = [remaining * length // weight if weight else remaining // max(1, len(open_indices)) for length in lengths]
    # Hand out what rounding left over, largest texts first, so the counts sum to the total.
    leftover = remaining - sum(shares)
    for rank in sorted(range(len(open_indices)), key=lambda r: -lengths[r])[:leftover]:
        shares[rank] += 1
    for i, share in zip(open_indices, shares):
        counts[i] = min(share, max_tokens)
    return counts
