"""Corpus browse pages (researchers): datasets, per-language statistics, prompts."""
import json

from django.core.paginator import Paginator
from django.shortcuts import render

from toxplatform.accounts.models import Role
from toxplatform.accounts.permissions import role_required
from toxplatform.corpus import selectors
from toxplatform.corpus.forms import PromptFilterForm

PROMPTS_PER_PAGE = 50


@role_required(Role.RESEARCHER)
def dataset_list(request):
    return render(request, "corpus/dataset_list.html", {"datasets": selectors.dataset_list()})


@role_required(Role.RESEARCHER)
def dataset_detail(request, slug: str):
    dataset = selectors.dataset_get(slug)
    context = {"dataset": dataset, "stats": selectors.dataset_stats(dataset)}
    return render(request, "corpus/dataset_detail.html", context)


@role_required(Role.RESEARCHER)
def prompt_list(request, slug: str):
    dataset = selectors.dataset_get(slug)
    form = PromptFilterForm(request.GET, dataset=dataset)
    context = {"dataset": dataset, "form": form, "page": None}
    if not form.is_valid():
        # Show the form with its errors and no rows: a list under a filter that was not applied misleads.
        return render(request, "corpus/prompt_list.html", context, status=400)
    prompts = selectors.prompt_list(dataset=dataset, **form.selector_filters())
    context["page"] = Paginator(prompts, PROMPTS_PER_PAGE).get_page(request.GET.get("page"))
    context["filtered"] = any(value not in (None, "") for value in form.cleaned_data.values())
    return render(request, "corpus/prompt_list.html", context)


@role_required(Role.RESEARCHER)
def prompt_detail(request, slug: str, pk: int):
    dataset = selectors.dataset_get(slug)
    prompt = selectors.prompt_get(dataset=dataset, prompt_id=pk)
    context = {
        "dataset": dataset,
        "prompt": prompt,
        "translations": selectors.prompt_translations(prompt),
        "metadata_json": json.dumps(prompt.metadata, indent=2, ensure_ascii=False, sort_keys=True),
    }
    return render(request, "corpus/prompt_detail.html", context)
