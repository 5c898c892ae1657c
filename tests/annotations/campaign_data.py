"""Rows for the annotation tests: the evaluation tests' mini dataset (two English, two Arabic,
one German prompt), two finished jobs with outputs and scores, annotators with profiles."""
from annotations import services
from tests.evaluation.results_data import PASSWORD, add_generation, make_dataset, make_job, make_user
from toxplatform.accounts.models import Role
from toxplatform.accounts.services import set_annotator_languages, set_annotator_preferences
from toxplatform.corpus.models import PromptLabel

__all__ = ["PASSWORD", "make_annotator", "make_jobs", "make_campaign", "HOSTILE"]

HOSTILE = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">=cmd|calc'


def output_text(job_index: int, prompt) -> str:
    # Never the job's model or method: the pages' blindness is tested against these names.
    return f"continuation {job_index + 1} of {prompt.language_id}/{prompt.external_id}"


def make_jobs(dataset=None, *, texts=None, samples: int = 1):
    """Two DONE jobs (base and detoxed) with `samples` outputs per prompt and lexicon scores;
    texts: {(language, external_id): (text of job 1, text of job 2)} overrides."""
    dataset = dataset or make_dataset()
    jobs = [make_job("gemma-3-270m", "none", dataset), make_job("gemma-3-270m", "system_prompt", dataset)]
    for prompt in dataset.prompts.all():
        for index, job in enumerate(jobs):
            for sample in range(samples):
                text = (texts or {}).get((prompt.language_id, prompt.external_id), (None, None))[index]
                add_generation(job, prompt, text or output_text(index, prompt),
                               score=0.2 + 0.3 * index, sample_index=sample)
    return dataset, jobs


def make_annotator(username: str, languages=("en", "ar", "de"), *, opted_out=(), daily_cap=None):
    user = make_user(username, Role.ANNOTATOR)
    set_annotator_languages(user=user, codes=languages)
    set_annotator_preferences(user=user, opted_out=opted_out, daily_cap=daily_cap)
    return user


def make_campaign(jobs, *, kind="pairwise", languages=("en", "ar", "de"), categories=("toxicity",), annotators=(),
                  **options):
    options.setdefault("items_per_language", 10)
    options.setdefault("overlap", 2)
    return services.create_campaign(name=f"{kind} test", kind=kind, jobs=jobs, languages=languages,
                                    categories=categories, annotators=annotators, **options)


def label_prompt(dataset, language, external_id, category, value=2.0):
    """A gold label above the scale's minimum tags the prompt's items with the category."""
    prompt = dataset.prompts.get(language_id=language, external_id=external_id)
    return PromptLabel.objects.create(prompt=prompt, category_id=category, value=value, source="human",
                                      scale_min=1, scale_max=3, num_raters=3)
