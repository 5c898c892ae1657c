"""Any OpenAI-compatible HTTP endpoint: vLLM, TGI, llama.cpp server, Ollama, hosted APIs.

ModelSpec: location = base URL ("http://host:8000/v1"; a bare "http://host:8000" gets
"/v1"), remote_model = the served model name, use_chat_template = use
/v1/chat/completions instead of /v1/completions. Options in spec.params (defaults below):
max_concurrency, timeout_s, max_retries, backoff_s, max_backoff_s, api_key_env (name of an
environment variable holding the key; else settings.OPENAI_API_KEY), api_key.

One request per prompt asks for all k samples (n=k) with a seed derived from (job seed,
prompt), so servers that honour `seed` (vLLM, llama.cpp) repeat their text on a re-run;
hosted APIs only try. A server that caps n gets follow-up requests for the rest.

token_count: servers report only the total completion tokens of a request. A choice that
stopped for "length" has exactly max_tokens; the rest of the total is shared among the
other choices in proportion to their text length. Without usage, whitespace-separated
words are counted. Both are approximations, documented as such.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import requests
from django.conf import settings

from evaluation import model_loading
from evaluation.http_client import RETRYABLE_STATUS, RetryingClient, retry_after_s  # noqa: F401 (re-exported)
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
from toxplatform.errors import ApplicationError

DEFAULTS = {
    "max_concurrency": 8,
    "timeout_s": 120.0,
    "max_retries": 5,
    "backoff_s": 0.5,
    "max_backoff_s": 30.0,
}


def base_url(location: str) -> str:
    url = (location or "").strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ApplicationError(f"endpoint URL {location!r} is not an http(s) URL")
    return url if parts.path else url + "/v1"


@registry.register
class OpenAIGenerator(Generator):
    name = "openai"
    label = "OpenAI-compatible HTTP endpoint"

    @classmethod
    def fingerprint_of(cls, config: ModelConfig) -> str:
        return model_loading.fingerprint_endpoint(base_url(config.location), config.remote_model)

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
        except (TypeError, ValueError) as exc:
            raise ApplicationError(f"bad endpoint option for model {config.name!r}: {exc}") from exc
        key_env = config.params.get("api_key_env")
        self.api_key = (os.environ.get(key_env, "") if key_env else "") or config.params.get("api_key") or settings.OPENAI_API_KEY
        self._client = RetryingClient(
            headers={"Authorization": f"Bearer {self.api_key}"} if self.api_key else {},
            timeout_s=self.timeout_s,
            max_retries=self.max_retries,
            backoff_s=self.backoff_s,
            max_backoff_s=self.max_backoff_s,
            # A self-hosted server's own error text is what tells a user what to fix.
            describe=error_message,
            context={"model": config.remote_model},
            show_non_json=True,
        )

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
        request_index = 0
        while len(samples) < wanted:
            # Each follow-up request gets its own seed, so a server that caps n does not
            # send the same samples again.
            seed = sample_seed(params.seed, prompt, request_index) % (2**31)
            got = self._request(prompt, params, wanted - len(samples), seed)
            if not got:
                raise ApplicationError(f"{self.base_url} returned no choices", {"model": self.config.remote_model})
            samples.extend(got)
            request_index += 1
        samples = samples[:wanted]
        return samples * params.k if greedy else samples

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
        return self._client.post_json(self.base_url + path, body)


def error_message(response: requests.Response) -> str:
    """The server's own error text: OpenAI-style {"error": {"message": ...}}, or the body."""
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
