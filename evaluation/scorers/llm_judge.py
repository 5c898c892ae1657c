"""An LLM asked to rate each text on the RTP-LX rubric (docs/scorers.md, "llm_judge").

The judge is either an OpenAI-compatible endpoint (`endpoint` + `model`: vLLM, TGI,
llama.cpp, a hosted API) or a local transformers chat model (`path`: a directory, or
package:<name>). What it is asked is a JudgePrompt version (versioned data, edited in the
admin or on the judge prompt page), never a constant here: `prompt` names it, and
`prompt_version` pins a version (empty: the newest when the scorer is built). Each reply is
read by judge_parser.parse_reply; a category it cannot read is a score of None with the
reason in raw (counted in the invalid rate), never a guess.

raw of every category: {"reply", "prompt", "prompt_version", "judge"} (+ "reason" if invalid).
"""
from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings

from evaluation.scorers import measures
from evaluation.scorers.base import Scorer, ScoreResult, ScoringInput, no_score, registry
from evaluation.scorers.judge_parser import SCALES, parse_reply
from toxplatform import outbound
from toxplatform.errors import ApplicationError
from toxplatform.params import Param, ParamSchema

TEXT_CHOICES = ("continuation", "full")
RUBRIC_CATEGORIES = list(SCALES)


def _categories_rule(value: list) -> str | None:
    unknown = [slug for slug in value if slug not in SCALES]
    if unknown:
        return f"has categories the rubric does not rate: {', '.join(unknown)} (known: {', '.join(SCALES)})"
    if not value:
        return "must name at least one category (empty: leave it out for all eight)"
    return None


def _one_judge(values: dict) -> dict[str, str]:
    endpoint, path = values.get("endpoint"), values.get("path")
    if bool(endpoint) == bool(path):
        return {"endpoint": "give either endpoint (an OpenAI-compatible URL) or path (a local chat model), not both"}
    if endpoint and not values.get("model"):
        return {"model": "is required with endpoint (the model name the endpoint serves)"}
    return {}


@registry.register
class LLMJudgeScorer(Scorer):
    name = "llm_judge"
    summary = (
        "An LLM rates each text on the RTP-LX rubric (toxicity 1-5, seven harm categories 1-3) "
        "in its language's own community; an unreadable answer is invalid, never guessed"
    )
    parameters = ParamSchema(
        Param("endpoint", str, None, optional=True, max_length=1000, single_line=True,
              help="An OpenAI-compatible base URL, e.g. http://host:8000/v1 (or give path)"),
        Param("model", str, None, optional=True, max_length=200, single_line=True,
              help="The model name the endpoint serves"),
        Param("path", str, None, optional=True, max_length=1000,
              help="A local transformers chat model directory, or package:<name> (or give endpoint)"),
        Param("prompt", str, "rtp-lx-rubric", max_length=100, single_line=True, help="Judge prompt name"),
        Param("prompt_version", int, None, optional=True, minimum=1, maximum=1_000_000,
              help="Judge prompt version. Empty: the newest"),
        Param("categories", list, None, optional=True, item_kind=str, max_length=8, rule=_categories_rule,
              help="Rubric categories to store. Empty: all eight"),
        Param("text", str, "continuation", choices=TEXT_CHOICES,
              help="Judge the continuation alone or prompt + continuation"),
        Param("max_tokens", int, 256, minimum=16, maximum=8192, help="Longest reply"),
        Param("temperature", float, 0.0, minimum=0, maximum=2, help="0: greedy (reproducible)"),
        Param("max_concurrency", int, 4, minimum=1, maximum=64, help="Requests in flight (endpoint)"),
        Param("timeout_s", float, 120.0, minimum=0.1, maximum=3600, help="Seconds per request (endpoint)"),
        Param("max_retries", int, 5, minimum=0, maximum=20, help="Retries on 429, 5xx and timeouts (endpoint)"),
        Param("backoff_s", float, 0.5, minimum=0, maximum=60, help="First retry's backoff (endpoint)"),
        Param("max_backoff_s", float, 30.0, minimum=0, maximum=600, help="Longest wait between retries (endpoint)"),
        Param("api_key_env", str, None, optional=True, max_length=100, single_line=True,
              help="Environment variable with the endpoint's key, one of settings.JUDGE_API_KEY_ENVS. Empty: no key"),
        Param("batch_size", int, 8, minimum=1, maximum=256, help="Texts per generate call (local)"),
        Param("device", str, "auto", max_length=20, help="auto, cpu, cuda or cuda:N (local)"),
        Param("dtype", str, "auto", choices=("auto", "float32", "bfloat16", "float16"), help="(local)"),
        checks=(_one_judge,),
    )

    def __init__(self, **params):
        super().__init__(**params)
        from evaluation import judge_prompts

        params = self.params
        self._categories = list(dict.fromkeys(params["categories"] or RUBRIC_CATEGORIES))
        self.text = params["text"]
        # Resolved once: every item this instance scores uses the same version.
        self.prompt = judge_prompts.get_prompt(params["prompt"], params["prompt_version"])
        self.params["prompt_version"] = self.prompt.version
        self._judge = None
        if params["endpoint"]:
            from evaluation.generators.openai import base_url

            self.base_url = base_url(params["endpoint"])
            self.api_key = self._api_key(params["api_key_env"], self.base_url)
            self.judge_label = params["model"]
        else:
            self._check_local(params)
            self.judge_label = params["path"]

    # --- declaration -------------------------------------------------------------------
    def categories(self) -> list[str]:
        return list(self._categories)

    def measure(self, category: str) -> measures.Measure:
        low, high = SCALES[category]
        return measures.rating(low, high)

    def key(self) -> str:
        if self.params["endpoint"]:
            label = self.params["model"]
        else:
            from evaluation.scorers import _local_model as local

            label = local.model_label(self.params["path"])
        label = re.sub(r"[^A-Za-z0-9._=-]+", "-", label).strip("-")[:50] or "model"
        key = f"{self.name}:{label}:{self.prompt.name[:30]}:v{self.prompt.version}"
        return key if self.text == "continuation" else f"{key}:{self.text}"

    # --- checks ------------------------------------------------------------------------
    def _api_key(self, env_name: str | None, url: str) -> str:
        allowed = list(getattr(settings, "JUDGE_API_KEY_ENVS", []))
        if env_name is None:
            return ""  # a key is sent only when a job names one: the endpoint is a job parameter
        if env_name not in allowed:
            raise ApplicationError(
                f"Scorer 'llm_judge': api_key_env {env_name!r} is not an allowed key variable",
                {"allowed": ", ".join(allowed) or "none (set TOXPLATFORM_JUDGE_KEY_ENVS)"},
            )
        outbound.check_key_host(env_name, url)  # the endpoint is a job parameter: keys stay on listed hosts
        key = os.environ.get(env_name, "")
        if not key:
            raise ApplicationError(f"Scorer 'llm_judge': environment variable {env_name} is empty or not set")
        return key

    def _check_local(self, params: dict) -> None:
        from evaluation import model_loading

        location = params["path"]
        if location.startswith(model_loading.PACKAGE_PREFIX):
            from evaluation.scorers import _local_model as local

            local.check_packaged_model(location, self.name)
            return
        directory, gguf_file = model_loading.local_model_files(location)
        if gguf_file:
            raise ApplicationError("Scorer 'llm_judge': path must be a model directory, not a GGUF file",
                                   {"fix": "convert it, or use package:<name> for a packaged model"})
        if not model_loading.has_chat_template(directory):
            raise ApplicationError(
                "Scorer 'llm_judge': the local model has no chat template (a judge must be a chat/instruct model)",
                {"path": str(directory)},
            )

    # --- scoring -----------------------------------------------------------------------
    def judged_text(self, item: ScoringInput) -> str:
        return item.continuation if self.text == "continuation" else item.prompt + item.continuation

    def score(self, items: list[ScoringInput]) -> list[dict[str, ScoreResult]]:
        from evaluation import judge_prompts

        results: list[dict[str, ScoreResult] | None] = [None] * len(items)
        pending = []  # (item index, messages)
        for index, item in enumerate(items):
            text = self.judged_text(item)
            if not text.strip():
                results[index] = {c: no_score("empty text: nothing to judge", **self._raw("")) for c in self._categories}
                continue
            pending.append((index, judge_prompts.render_messages(self.prompt, text, item.language)))
        replies = self._ask([messages for _, messages in pending]) if pending else []
        for (index, _), reply in zip(pending, replies):
            if isinstance(reply, _NotAsked):
                results[index] = {c: no_score(reply.reason, **self._raw("")) for c in self._categories}
            else:
                results[index] = self.read_reply(reply)
        return results

    def read_reply(self, reply: str) -> dict[str, ScoreResult]:
        """One reply -> a ScoreResult per category (invalid ones with their reason)."""
        raw = self._raw(reply)
        parsed = parse_reply(reply, self._categories)
        return {
            category: ScoreResult(float(value), dict(raw)) if isinstance(value, int) else no_score(value, **raw)
            for category, value in parsed.items()
        }

    def _raw(self, reply: str) -> dict:
        return {"reply": reply, "prompt": self.prompt.name, "prompt_version": self.prompt.version,
                "judge": self.judge_label}

    def _ask(self, conversations: list[list[dict]]) -> list[str]:
        if self._judge is None:
            self._judge = _EndpointJudge(self) if self.params["endpoint"] else _LocalJudge(self)
        return self._judge.replies(conversations)

    def close(self) -> None:
        if self._judge is not None:
            self._judge.close()
            self._judge = None


class _NotAsked:
    """An item the judge could not be asked (its reason becomes every category's reason)."""

    def __init__(self, reason: str):
        self.reason = reason


class _EndpointJudge:
    """/chat/completions on an OpenAI-compatible server, `max_concurrency` requests at once."""

    def __init__(self, scorer: LLMJudgeScorer):
        from evaluation.http_client import RetryingClient

        params = scorer.params
        self.url = scorer.base_url + "/chat/completions"
        self.model = params["model"]
        self.max_tokens = params["max_tokens"]
        self.temperature = params["temperature"]
        self.max_concurrency = params["max_concurrency"]
        key_source = params["api_key_env"]
        self.client = RetryingClient(
            headers={"Authorization": f"Bearer {scorer.api_key}"} if scorer.api_key else {},
            timeout_s=params["timeout_s"],
            max_retries=params["max_retries"],
            backoff_s=params["backoff_s"],
            max_backoff_s=params["max_backoff_s"],
            context={"judge": self.model},
            auth_hint=(f"check the key in the environment variable {key_source}" if key_source
                       else "the endpoint wants a key: name its variable in api_key_env"),
        )

    def replies(self, conversations: list[list[dict]]) -> list[str]:
        with ThreadPoolExecutor(max_workers=self.max_concurrency) as pool:
            return list(pool.map(self._reply, conversations))

    def _reply(self, messages: list[dict]) -> str:
        body = {"model": self.model, "messages": messages, "max_tokens": self.max_tokens,
                "temperature": self.temperature, "n": 1, "seed": 0}
        data = self.client.post_json(self.url, body)
        choices = data.get("choices") if isinstance(data, dict) else None
        if not choices or not isinstance(choices[0], dict):
            raise ApplicationError(f"{self.url} returned no choices", {"judge": self.model})
        content = (choices[0].get("message") or {}).get("content")
        # A null content (a refusal, a tool call) is a reply with no scores: parsed as invalid.
        return content if isinstance(content, str) else ""

    def close(self) -> None:
        pass


class _LocalJudge:
    """A local chat model through the hf generator's loading and decoding code."""

    def __init__(self, scorer: LLMJudgeScorer):
        from evaluation.generators.base import GenerationParams, ModelConfig
        from evaluation.generators.hf import HFGenerator

        class _RenderedChat(HFGenerator):
            # The judge renders multi-turn chats (few-shot turns) with the tokenizer's template
            # itself, so the generator must encode the text as given, without adding BOS again.
            def encode(self, prompts):
                encoded = self.tokenizer([p.text for p in prompts], add_special_tokens=False)["input_ids"]
                return [ids or [self.tokenizer.eos_token_id] for ids in encoded]

        params = scorer.params
        config = ModelConfig(name="llm_judge", backend="hf", location=params["path"], device=params["device"],
                             dtype=params["dtype"], use_chat_template=True)
        self.model = _RenderedChat(config)
        self.params = GenerationParams(k=1, max_new_tokens=params["max_tokens"], temperature=params["temperature"],
                                       top_p=1.0, seed=0, batch_size=params["batch_size"])

    def replies(self, conversations: list[list[dict]]) -> list[str | _NotAsked]:
        from evaluation.generators.base import PromptInput

        tokenizer = self.model.tokenizer
        texts = [tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
                 for messages in conversations]
        # The generator keeps the *end* of a prompt that does not fit, which would cut the
        # rubric off the front: such an item is not asked at all.
        limit = getattr(self.model.model.config, "max_position_embeddings", None)
        out: list[str | _NotAsked | None] = [None] * len(texts)
        fitting = []
        for index, text in enumerate(texts):
            length = len(tokenizer(text, add_special_tokens=False)["input_ids"])
            if limit and length + self.params.max_new_tokens > limit:
                out[index] = _NotAsked(
                    f"prompt of {length} tokens + {self.params.max_new_tokens} for the reply exceeds the "
                    f"judge's context of {limit} tokens"
                )
            else:
                fitting.append(index)
        if fitting:
            samples = self.model.generate([PromptInput(texts[i], "") for i in fitting], self.params)
            for index, sample_list in zip(fitting, samples):
                out[index] = sample_list[0].text
        return out

    def close(self) -> None:
        self.model.close()
