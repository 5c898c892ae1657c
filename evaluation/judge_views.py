"""Researcher pages for judge prompts: the list, and one prompt's versions with an edit form
whose save writes a new version (judge_prompts.save_version; nothing is overwritten)."""
from __future__ import annotations

import json

from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render

from evaluation import judge_prompts
from evaluation.judge_models import JudgePrompt
from toxplatform.accounts.models import Role
from toxplatform.accounts.permissions import role_required
from toxplatform.errors import ApplicationError

RESEARCHER = role_required(Role.RESEARCHER)


@RESEARCHER
def judge_prompt_list(request):
    newest: dict[str, JudgePrompt] = {}
    for row in JudgePrompt.objects.order_by("name", "-version").select_related("created_by"):
        newest.setdefault(row.name, row)
    return render(request, "evaluation/judge_prompt_list.html", {"prompts": list(newest.values())})


@RESEARCHER
def judge_prompt_detail(request, name: str):
    versions = list(JudgePrompt.objects.filter(name=name).order_by("-version").select_related("created_by"))
    is_new = name == "new"
    if not versions and not is_new:
        raise Http404("no such judge prompt")
    shown = versions[0] if versions else None
    if versions and request.GET.get("version", "").isdigit():
        shown = next((v for v in versions if v.version == int(request.GET["version"])), shown)
    form = {
        "name": "" if is_new else name,
        "template": shown.template if shown else "",
        "few_shot": json.dumps(shown.few_shot if shown else [], ensure_ascii=False, indent=2),
        "note": "",
    }
    error = None
    if request.method == "POST":
        form = {key: request.POST.get(key, "") for key in ("name", "template", "few_shot", "note")}
        if not is_new:
            form["name"] = name
        try:
            few_shot = _json_list(form["few_shot"])
            before = versions[0].version if versions else 0
            saved = judge_prompts.save_version(form["name"], form["template"].replace("\r\n", "\n"), few_shot,
                                               user=request.user, note=form["note"])
        except ApplicationError as exc:
            error = exc
        else:
            if saved.version == before:
                messages.info(request, f"Nothing changed: {saved} is still the newest version.")
            else:
                messages.success(request, f"Saved {saved}.")
            return redirect("evaluation:judge-prompt-detail", name=saved.name)
    context = {"name": name, "is_new": is_new, "versions": versions, "shown": shown, "form": form, "error": error}
    return render(request, "evaluation/judge_prompt_detail.html", context, status=400 if error else 200)


def _json_list(text: str) -> list:
    if not text.strip():
        return []
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ApplicationError("Invalid judge prompt", {"few_shot": f"is not valid JSON ({exc.msg}, line {exc.lineno})"}) from None
    return value
