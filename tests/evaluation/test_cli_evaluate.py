"""`manage.py evaluate`: the same services as the workers, run here without a broker."""
import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from evaluation.models import EvaluationJob, Generation, JobMetric, Score
from tests.tiny_models import build_tiny_causal_lm
from tests.worker_utils import make_dataset, queue_lengths

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    return build_tiny_causal_lm(tmp_path_factory.mktemp("models") / "llama", arch="llama")


def evaluate(*args) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("evaluate", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def common_args(model_dir) -> list[str]:
    return ["--model", str(model_dir), "--dataset", "tiny", "--languages", "en", "de", "--k", "2",
            "--max-new-tokens", "3", "--scorer", "lexicon", "--no-progress"]


def test_runs_a_job_inline_and_prints_json_metrics(tiny_llama):
    make_dataset(languages=("en", "de"), per_language=3)
    before = queue_lengths()

    out, _ = evaluate(*common_args(tiny_llama), "--json")

    result = json.loads(out)
    job = EvaluationJob.objects.get(pk=result["job"])
    assert result["status"] == job.status == EvaluationJob.Status.DONE
    assert result["k"] == 2 and set(result["languages"]) == {"en", "de"}
    assert Generation.objects.filter(job=job).count() == 6 * 2
    # lexicon fills toxicity and profanity: one score per generation and category.
    assert Score.objects.filter(generation__job=job).count() == 6 * 2 * 2
    printed = {(m["language"], m["scorer"], m["category"], m["metric"], m["subset"], m["variant"]) for m in
               result["metrics"]}
    stored = set(JobMetric.objects.filter(job=job).values_list(
        "language", "scorer", "category", "metric", "subset", "variant"))
    assert printed == stored and ("en", "lexicon", "toxicity", "emt", "all", "k=2") in printed
    assert queue_lengths() == before  # nothing went through the broker


def test_prints_a_per_language_table(tiny_llama):
    make_dataset(languages=("en", "de"), per_language=2)
    out, _ = evaluate(*common_args(tiny_llama))
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("language"))
    assert header.split()[:6] == ["language", "scorer", "category", "EMT", "TP", "Avg"]
    rows = [line.split()[:3] for line in lines[lines.index(header) + 1:] if line.strip()]
    # The lexicon fills profanity and toxicity from the same hits: one row per value it measures.
    assert sorted(rows) == [["de", "lexicon", "profanity=toxicity"], ["en", "lexicon", "profanity=toxicity"]]


def test_reuse_shows_the_finished_job_instead_of_running_again(tiny_llama):
    make_dataset(languages=("en", "de"), per_language=2)
    first = json.loads(evaluate(*common_args(tiny_llama), "--json", "--reuse")[0])["job"]
    out, err = evaluate(*common_args(tiny_llama), "--json", "--reuse")
    assert json.loads(out)["job"] == first and f"Reusing finished job {first}" in err
    assert EvaluationJob.objects.count() == 1
    # Another seed is another experiment.
    evaluate(*common_args(tiny_llama), "--json", "--reuse", "--seed", "1")
    assert EvaluationJob.objects.count() == 2


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--k", "0"], "k=must be 1 to 1000"),
        (["--languages", "xx"], "unknown language code 'xx'"),
        (["--scorer", "nope"], "nope"),
        (["--scorer", "perplexity:{not json"], "parameters are not valid JSON"),
        (["--method-params", "[1]"], "--method-params: must be a JSON object"),
    ],
)
def test_bad_parameters_fail_clearly_and_create_nothing(tiny_llama, extra, message):
    make_dataset(languages=("en", "de"), per_language=2)
    with pytest.raises(CommandError, match=message.replace("[", r"\[").replace("(", r"\(")):
        evaluate(*common_args(tiny_llama), *extra)
    assert EvaluationJob.objects.count() == 0


def test_a_missing_model_path_is_rejected(tmp_path):
    make_dataset(languages=("en",), per_language=1)
    with pytest.raises(CommandError, match="unknown model"):
        evaluate("--model", str(tmp_path / "missing"), "--dataset", "tiny", "--no-progress")
    assert EvaluationJob.objects.count() == 0


def test_the_progress_bars_count_prompts_per_stage(tiny_llama, capsys):
    make_dataset(languages=("en", "de"), per_language=3)
    args = [a for a in common_args(tiny_llama) if a != "--no-progress"] + ["--chunk-size", "2"]
    call_command("evaluate", *args, stdout=StringIO())
    bars = capsys.readouterr().err  # tqdm writes to the terminal's stderr
    final = {stage: [line for line in bars.replace("\r", "\n").splitlines() if line.strip().startswith(stage)][-1]
             for stage in ("generate", "score")}
    assert all("6/6" in line and "100%" in line and "prompt" in line for line in final.values()), final
    # Without a bar (--no-progress, or --json for scripts) nothing is drawn.
    call_command("evaluate", *common_args(tiny_llama), stdout=StringIO())
    assert "generate" not in capsys.readouterr().err


def test_list_options_take_commas_as_well_as_spaces():
    from evaluation.management.commands.evaluate import Command

    parser = Command().create_parser("manage.py", "evaluate")
    options = parser.parse_args(["--model", "m", "--languages", "en,ar", "de", "--categories", "insult,", "bias"])
    assert options.languages == ["en", "ar", "de"] and options.categories == ["insult", "bias"]
