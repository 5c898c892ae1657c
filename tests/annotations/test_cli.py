"""manage.py create_campaign."""
import json

import pytest
from django.core.management import CommandError, call_command

from annotations.models import Campaign
from tests.annotations.campaign_data import make_annotator

pytestmark = pytest.mark.django_db


def test_create_campaign_from_the_command_line(jobs, capsys, tmp_path):
    _, pair = jobs
    make_annotator("ann")
    instructions = tmp_path / "instructions.json"
    instructions.write_text(json.dumps({"ar": "اقرأ بعناية"}), encoding="utf-8")
    call_command("create_campaign", "--name", "CLI", "--kind", "rating", "--jobs", str(pair[0].pk), "--languages", "ar", "en",
                 "--categories", "toxicity", "insult", "--overlap", "2", "--annotators", "ann",
                 "--instructions-json", str(instructions), "--json")
    printed = json.loads(capsys.readouterr().out)
    assert printed["items"] == {"ar": 2, "en": 2} and printed["annotators"] == ["ann"]
    assert Campaign.objects.get().instructions_for("ar") == "اقرأ بعناية"
    pair[1].name = "detoxed"
    pair[1].save()
    arguments = ["--name", "Named", "--kind", "pairwise", "--jobs", str(pair[0].pk), "detoxed", "--languages", "de"]
    call_command("create_campaign", *arguments, "--if-missing")
    call_command("create_campaign", *arguments, "--if-missing")  # a second run changes nothing
    assert Campaign.objects.filter(name="Named").get().items.count() == 1


def test_bad_arguments_fail_clearly_and_create_nothing(jobs):
    _, pair = jobs
    with pytest.raises(CommandError, match="no finished job"):
        call_command("create_campaign", "--name", "x", "--kind", "pairwise", "--jobs", "999", "--languages", "en")
    with pytest.raises(CommandError, match="at least two finished jobs"):
        call_command("create_campaign", "--name", "x", "--kind", "pairwise", "--jobs", str(pair[0].pk), "--languages", "en")
    assert not Campaign.objects.exists()
